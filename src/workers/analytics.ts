import type { Knex } from 'knex';
import { PermanentError } from '../domain/errors';
import type { WarrenMessage } from '../domain/messages';
import { extractHashtags, extractMentions, HANDLE_PATTERN } from '../domain/text';
import { analyticsMigrations } from '../db/migrations/analytics';
import type { WorkerDeclaration } from './declaration';

/** Width of the `tag` columns (see migrations/analytics.ts); PostgreSQL enforces it, SQLite does not. */
const TAG_MAX_CHARS = 100;

/**
 * Rows per multi-row upsert, whatever a batch's tweets hold: knex writes a
 * multi-row insert for SQLite as a compound SELECT, which may have at most
 * 500 terms (SQLITE_MAX_COMPOUND_SELECT); 4 columns stay far inside both
 * databases' bound-parameter limits.
 */
const UPSERT_CHUNK = 500;

/**
 * Folds one tweet into the analytics read model. Every statement is an
 * upsert that adds to what is there, so tweets may arrive in any order and
 * from any number of competing workers; exactly-once is the consumer's
 * inbox record, written in this same transaction.
 */
export async function analyticsHandler(message: WarrenMessage<'tweet.created'>, tx: Knex.Transaction): Promise<void> {
  const { authorId, authorHandle, text, createdAt } = message.body;
  checkHandle(authorHandle);
  const at = utcInstant(createdAt);

  await countTweetOfUser(tx, authorId, authorHandle, at);

  const tags = tagsOf(text);
  if (tags.length > 0) {
    await tx('user_hashtags')
      .insert(tags.map((tag) => ({ user_id: authorId, tag, count: 1 })))
      .onConflict(['user_id', 'tag'])
      .merge({ count: plusOne(tx, 'user_hashtags') });
    await tx('hashtags')
      .insert(tags.map((tag) => ({ tag, count: 1 })))
      .onConflict('tag')
      .merge({ count: plusOne(tx, 'hashtags') });
  }

  const mentions = extractMentions(text);
  if (mentions.length > 0) {
    await tx('user_mentions')
      .insert(mentions.map((handle) => ({ user_id: authorId, handle, count: 1 })))
      .onConflict(['user_id', 'handle'])
      .merge({ count: plusOne(tx, 'user_mentions') });
  }

  await tx('tweets_per_hour')
    .insert({ hour: at.slice(0, 13), count: 1 })
    .onConflict('hour')
    .merge({ count: plusOne(tx, 'tweets_per_hour') });
}

/**
 * tweet_count + 1; last_tweet_at only moves forward, so a late, older tweet
 * does not wind it back; the handle is the one of the newest tweet, for the
 * same reason. CASE rather than max()/GREATEST(): one SQL for both databases.
 */
async function countTweetOfUser(tx: Knex.Transaction, userId: string, handle: string, at: string): Promise<void> {
  await tx('user_stats')
    .insert({ user_id: userId, handle, tweet_count: 1, last_tweet_at: at })
    .onConflict('user_id')
    .merge({
      tweet_count: plusOne(tx, 'user_stats', 'tweet_count'),
      last_tweet_at: tx.raw(`CASE WHEN ${isNewest} THEN excluded.last_tweet_at ELSE user_stats.last_tweet_at END`),
      handle: tx.raw(`CASE WHEN ${isNewest} THEN excluded.handle ELSE user_stats.handle END`),
    });
}

const isNewest = 'user_stats.last_tweet_at IS NULL OR user_stats.last_tweet_at <= excluded.last_tweet_at';

/** A handle the column cannot hold would fail on every retry: park it at once. */
function checkHandle(handle: string): void {
  if (!HANDLE_PATTERN.test(handle)) throw new PermanentError(`authorHandle ${JSON.stringify(handle)} is not a valid handle`);
}

/** One fixed-width UTC form, so that comparing the strings compares the instants. */
function utcInstant(createdAt: string): string {
  return new Date(createdAt).toISOString();
}

/** The existing row's counter + 1 (the table name qualifies it: `count` alone is ambiguous with `excluded`). */
function plusOne(tx: Knex.Transaction, table: string, column = 'count'): Knex.Raw {
  return tx.raw('?? + 1', [`${table}.${column}`]);
}

/**
 * Case-folded hashtags, cut to the column width. Lower-casing can lengthen a
 * tag (`İ` becomes two code points), and two tags cut to the same prefix must
 * stay one row, or a multi-row upsert would touch a row twice (PostgreSQL refuses).
 */
function tagsOf(text: string): string[] {
  return [...new Set(extractHashtags(text).map((tag) => [...tag].slice(0, TAG_MAX_CHARS).join('')))];
}

/** What a batch of tweets adds to the read model, one entry per row it touches. */
export interface AnalyticsTally {
  users: Map<string, { user_id: string; handle: string; tweet_count: number; last_tweet_at: string }>;
  userHashtags: Map<string, { user_id: string; tag: string; count: number }>;
  hashtags: Map<string, { tag: string; count: number }>;
  userMentions: Map<string, { user_id: string; handle: string; count: number }>;
  tweetsPerHour: Map<string, { hour: string; count: number }>;
}

/**
 * Sums a batch of tweets in memory, with the rules of `analyticsHandler`
 * applied to them one after another: per user the count, the newest
 * last_tweet_at and the handle of the newest tweet (of two equally new, the
 * later one, as the handler's `<=` does); case-folded, cut hashtags and
 * mentions once per tweet; tweets per UTC hour. Throws PermanentError for a
 * handle no column can hold, like the handler.
 */
export function tallyTweets(messages: readonly WarrenMessage<'tweet.created'>[]): AnalyticsTally {
  const tally: AnalyticsTally = { users: new Map(), userHashtags: new Map(), hashtags: new Map(), userMentions: new Map(), tweetsPerHour: new Map() };
  for (const { body } of messages) {
    const { authorId, authorHandle, text, createdAt } = body;
    checkHandle(authorHandle);
    const at = utcInstant(createdAt);
    const user = tally.users.get(authorId);
    if (!user) {
      tally.users.set(authorId, { user_id: authorId, handle: authorHandle, tweet_count: 1, last_tweet_at: at });
    } else {
      user.tweet_count++;
      if (user.last_tweet_at <= at) Object.assign(user, { last_tweet_at: at, handle: authorHandle });
    }
    for (const tag of tagsOf(text)) {
      addOne(tally.userHashtags, `${authorId} ${tag}`, () => ({ user_id: authorId, tag, count: 0 }));
      addOne(tally.hashtags, tag, () => ({ tag, count: 0 }));
    }
    for (const handle of extractMentions(text)) addOne(tally.userMentions, `${authorId} ${handle}`, () => ({ user_id: authorId, handle, count: 0 }));
    const hour = at.slice(0, 13);
    addOne(tally.tweetsPerHour, hour, () => ({ hour, count: 0 }));
  }
  return tally;
}

function addOne<R extends { count: number }>(map: Map<string, R>, key: string, create: () => R): void {
  let row = map.get(key);
  if (!row) map.set(key, (row = create()));
  row.count++;
}

/**
 * The batch form of `analyticsHandler`: the same effect for many tweets in
 * one upsert per table (their sums, computed in memory), instead of about
 * six statements per tweet. Rows go in key order, and tables in one order,
 * so two workers' batches take the row locks they share in the same order
 * and never deadlock.
 */
export async function analyticsBatchHandler(messages: WarrenMessage<'tweet.created'>[], tx: Knex.Transaction): Promise<void> {
  const tally = tallyTweets(messages);
  await upsertAll(tx, 'user_stats', tally.users, ['user_id'], {
    tweet_count: tx.raw('user_stats.tweet_count + excluded.tweet_count'),
    last_tweet_at: tx.raw(`CASE WHEN ${isNewest} THEN excluded.last_tweet_at ELSE user_stats.last_tweet_at END`),
    handle: tx.raw(`CASE WHEN ${isNewest} THEN excluded.handle ELSE user_stats.handle END`),
  });
  await upsertAll(tx, 'user_hashtags', tally.userHashtags, ['user_id', 'tag'], { count: plusExcluded(tx, 'user_hashtags') });
  await upsertAll(tx, 'user_mentions', tally.userMentions, ['user_id', 'handle'], { count: plusExcluded(tx, 'user_mentions') });
  // The rows every batch touches (popular tags, the current hour) last: a
  // concurrent batch waits for their locks only from here to COMMIT.
  await upsertAll(tx, 'hashtags', tally.hashtags, ['tag'], { count: plusExcluded(tx, 'hashtags') });
  await upsertAll(tx, 'tweets_per_hour', tally.tweetsPerHour, ['hour'], { count: plusExcluded(tx, 'tweets_per_hour') });
}

/** Multi-row INSERT ... ON CONFLICT DO UPDATE, each key once (PostgreSQL refuses to touch a row twice in one statement). */
async function upsertAll(tx: Knex.Transaction, table: string, rows: Map<string, object>, key: string[], merge: Record<string, Knex.Raw>): Promise<void> {
  const sorted = [...rows.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, row]) => row);
  for (let i = 0; i < sorted.length; i += UPSERT_CHUNK) {
    await tx(table)
      .insert(sorted.slice(i, i + UPSERT_CHUNK))
      .onConflict(key)
      .merge(merge);
  }
}

/** The existing row's counter plus the batch's sum for it. */
function plusExcluded(tx: Knex.Transaction, table: string): Knex.Raw {
  return tx.raw('?? + excluded.??', [`${table}.count`, 'count']);
}

/** `warren worker analytics`: the competing consumers of the tweets work queue. */
export const analyticsWorker: WorkerDeclaration<'tweet.created'> = {
  name: 'analytics',
  queue: 'analytics.tweets',
  bindings: [{ exchange: 'tweets', routingKey: 'tweet.*' }],
  handles: ['tweet.created'],
  handle: analyticsHandler,
  handleBatch: analyticsBatchHandler,
  database: { service: 'analytics', migrations: analyticsMigrations },
  brokerUser: 'analytics',
  defaults: { retryAttempts: 5 },
};
