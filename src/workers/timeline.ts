/** @file The timeline service's worker: home timelines built by fan-out on write from tweets and follow events. */
import type { Knex } from 'knex';
import { PermanentError } from '../domain/errors';
import type { WarrenMessage } from '../domain/messages';
import { HANDLE_PATTERN } from '../domain/text';
import type { HandlerContext, WorkerDefinition } from '../consume/handler';
import { AUTHORS_TABLE, ENTRIES_TABLE, FOLLOWS_TABLE, RECENT_TWEETS_TABLE, SIZES_TABLE, timelineMigrations } from '../db/migrations/timeline';
import type { WorkerDeclaration } from './declaration';
import { timelineHttp } from './timelineHttp';

/** The events a home timeline is made of. */
export type TimelineEvent = 'tweet.created' | 'user.created' | 'user.updated' | 'user.followed' | 'user.unfollowed';

export const DEFAULT_MAX_ENTRIES = 800;

/** Rows per multi-row insert: inside SQLite's 500 compound-select terms and both databases' parameter limits. */
const INSERT_CHUNK = 400;

/**
 * A timeline may grow this far past its cap before it is trimmed back to
 * it, so that a full timeline costs a trim every `slack` tweets rather than
 * on each; reads never show more than the cap (src/db/repositories/timelines.ts).
 */
export function trimSlack(maxEntries: number): number {
  return Math.max(1, Math.floor(maxEntries / 10));
}

/** What the messages of one transaction changed, for the trims done once at its end. */
interface Touched {
  /** Timelines that grew. */
  timelines: Set<string>;
  /** Authors whose recent tweets grew. */
  authors: Set<string>;
}

/**
 * Applies each message in order in `tx`, then trims what grew: timelines
 * to `maxEntries` (once they pass it by the slack) and each author's recent
 * tweets to `maxEntries` (the most a follow backfills). Every rule is
 * order-independent where events can overtake each other (a retry comes
 * back later than the events after it): a follow or unfollow older than
 * the one already applied for that pair changes nothing, and a handle is
 * replaced only by a newer one.
 */
export async function applyTimelineEvents(
  messages: readonly WarrenMessage<TimelineEvent>[],
  tx: Knex.Transaction,
  ctx: HandlerContext,
  maxEntries: number,
): Promise<void> {
  const touched: Touched = { timelines: new Set(), authors: new Set() };
  for (const message of messages) {
    ctx.signal.throwIfAborted();
    await applyOne(message, tx, ctx, maxEntries, touched);
  }
  await trimTimelines(tx, touched.timelines, maxEntries);
  await trimRecentTweets(tx, touched.authors, maxEntries);
}

async function applyOne(message: WarrenMessage<TimelineEvent>, tx: Knex.Transaction, ctx: HandlerContext, maxEntries: number, touched: Touched): Promise<void> {
  switch (message.type) {
    case 'tweet.created':
      return fanOutTweet(message.body, tx, ctx, touched);
    case 'user.created':
      return recordHandle(tx, message.body.userId, message.body.handle, message.body.createdAt);
    case 'user.updated': {
      const to = message.body.changes.handle?.to;
      if (typeof to === 'string') await recordHandle(tx, message.body.userId, to, message.body.updatedAt);
      return;
    }
    case 'user.followed':
      return follow(tx, message.body, maxEntries, touched);
    case 'user.unfollowed':
      return unfollow(tx, message.body);
  }
}

/** A tweet goes into its author's timeline and each current follower's; its text is kept with the author's recent tweets. */
async function fanOutTweet(body: WarrenMessage<'tweet.created'>['body'], tx: Knex.Transaction, ctx: HandlerContext, touched: Touched): Promise<void> {
  const { tweetId, authorId, authorHandle, text, createdAt } = body;
  await recordHandle(tx, authorId, authorHandle, createdAt);
  const stored = await tx(RECENT_TWEETS_TABLE)
    .insert({ tweet_id: tweetId, author_id: authorId, text, created_at: utcInstant(createdAt) })
    .onConflict('tweet_id')
    .ignore()
    .returning('tweet_id');
  // The same tweet under another message id (a replayed copy) was fanned out already.
  if (stored.length === 0) return;
  touched.authors.add(authorId);
  const followers = (await tx(FOLLOWS_TABLE).where({ followee_id: authorId, following: true }).pluck('follower_id')) as string[];
  const readers = [authorId, ...followers];
  for (let i = 0; i < readers.length; i += INSERT_CHUNK) {
    ctx.signal.throwIfAborted();
    const chunk = readers.slice(i, i + INSERT_CHUNK);
    await addEntries(
      tx,
      chunk.map((userId) => ({ user_id: userId, tweet_id: tweetId, author_id: authorId })),
      touched,
    );
  }
}

/** A follow newer than what is known of the pair: the followee's recent tweets join the follower's timeline. */
async function follow(tx: Knex.Transaction, body: WarrenMessage<'user.followed'>['body'], maxEntries: number, touched: Touched): Promise<void> {
  const { followerId, followeeId } = body;
  const wasFollowing = await recordFollow(tx, followerId, followeeId, true, utcInstant(body.at));
  if (wasFollowing !== false) return;
  const recent = (await tx(RECENT_TWEETS_TABLE).where({ author_id: followeeId }).orderBy('tweet_id', 'desc').limit(maxEntries).pluck('tweet_id')) as string[];
  for (let i = 0; i < recent.length; i += INSERT_CHUNK) {
    await addEntries(
      tx,
      recent.slice(i, i + INSERT_CHUNK).map((tweetId) => ({ user_id: followerId, tweet_id: tweetId, author_id: followeeId })),
      touched,
    );
  }
}

/** An unfollow newer than what is known of the pair: the followee's tweets leave the follower's timeline. */
async function unfollow(tx: Knex.Transaction, body: WarrenMessage<'user.unfollowed'>['body']): Promise<void> {
  const { followerId, followeeId } = body;
  const wasFollowing = await recordFollow(tx, followerId, followeeId, false, utcInstant(body.at));
  if (wasFollowing !== true) return;
  const removed = await tx(ENTRIES_TABLE).where({ user_id: followerId, author_id: followeeId }).delete();
  if (removed > 0) await tx(SIZES_TABLE).where({ user_id: followerId }).decrement('entries', removed);
}

/**
 * Records that `followerId` follows (or no longer follows) `followeeId` as
 * of `at`, unless a later event for the pair was applied already. Returns
 * whether they followed before (false for a pair never seen), or undefined
 * when this event is older than the one applied and changes nothing. Of two
 * events of the same instant, the later one applied wins.
 */
async function recordFollow(tx: Knex.Transaction, followerId: string, followeeId: string, following: boolean, at: string): Promise<boolean | undefined> {
  const key = { follower_id: followerId, followee_id: followeeId };
  const known = (await tx(FOLLOWS_TABLE).where(key).first('following', 'changed_at')) as { following: boolean | number; changed_at: string } | undefined;
  if (known && known.changed_at > at) return undefined;
  if (known) await tx(FOLLOWS_TABLE).where(key).update({ following, changed_at: at });
  else await tx(FOLLOWS_TABLE).insert({ ...key, following, changed_at: at });
  return known ? Boolean(known.following) : false;
}

/** Inserts timeline entries (each (user, tweet) once) and counts what each timeline gained. */
async function addEntries(tx: Knex.Transaction, rows: { user_id: string; tweet_id: string; author_id: string }[], touched: Touched): Promise<void> {
  if (rows.length === 0) return;
  const added = (await tx(ENTRIES_TABLE).insert(rows).onConflict(['user_id', 'tweet_id']).ignore().returning('user_id')) as { user_id: string }[];
  const gained = new Map<string, number>();
  for (const { user_id } of added) gained.set(user_id, (gained.get(user_id) ?? 0) + 1);
  if (gained.size === 0) return;
  const sizes = [...gained].sort(([a], [b]) => (a < b ? -1 : 1)).map(([user_id, entries]) => ({ user_id, entries }));
  await tx(SIZES_TABLE)
    .insert(sizes)
    .onConflict('user_id')
    .merge({ entries: tx.raw('?? + excluded.??', [`${SIZES_TABLE}.entries`, 'entries']) });
  for (const userId of gained.keys()) touched.timelines.add(userId);
}

/** The handle shown with a user's tweets, replaced only by one from a newer event (CASE: one SQL for both databases). */
async function recordHandle(tx: Knex.Transaction, userId: string, handle: string, at: string): Promise<void> {
  if (!HANDLE_PATTERN.test(handle)) throw new PermanentError(`handle ${JSON.stringify(handle)} is not a valid handle`);
  const isNewer = `${AUTHORS_TABLE}.handle_at <= excluded.handle_at`;
  await tx(AUTHORS_TABLE)
    .insert({ user_id: userId, handle, handle_at: utcInstant(at) })
    .onConflict('user_id')
    .merge({
      handle: tx.raw(`CASE WHEN ${isNewer} THEN excluded.handle ELSE ${AUTHORS_TABLE}.handle END`),
      handle_at: tx.raw(`CASE WHEN ${isNewer} THEN excluded.handle_at ELSE ${AUTHORS_TABLE}.handle_at END`),
    });
}

/** Each timeline that passed its cap by the slack loses its oldest entries, down to the cap. */
async function trimTimelines(tx: Knex.Transaction, userIds: Set<string>, maxEntries: number): Promise<void> {
  const ids = [...userIds].sort();
  for (let i = 0; i < ids.length; i += INSERT_CHUNK) {
    const over = (await tx(SIZES_TABLE)
      .whereIn('user_id', ids.slice(i, i + INSERT_CHUNK))
      .andWhere('entries', '>=', maxEntries + trimSlack(maxEntries))
      .pluck('user_id')) as string[];
    for (const userId of over) {
      const oldestKept = (await tx(ENTRIES_TABLE)
        .where({ user_id: userId })
        .orderBy('tweet_id', 'desc')
        .offset(maxEntries - 1)
        .first('tweet_id')) as { tweet_id: string } | undefined;
      if (!oldestKept) continue;
      await tx(ENTRIES_TABLE).where({ user_id: userId }).andWhere('tweet_id', '<', oldestKept.tweet_id).delete();
      await tx(SIZES_TABLE).where({ user_id: userId }).update({ entries: maxEntries });
    }
  }
}

/**
 * Each author keeps their newest `maxEntries` tweets, the most a follow
 * backfills. An older one still in some timeline (one not trimmed yet)
 * stays until no timeline holds it, so no entry loses its text.
 */
async function trimRecentTweets(tx: Knex.Transaction, authorIds: Set<string>, maxEntries: number): Promise<void> {
  for (const authorId of [...authorIds].sort()) {
    const oldestKept = (await tx(RECENT_TWEETS_TABLE)
      .where({ author_id: authorId })
      .orderBy('tweet_id', 'desc')
      .offset(maxEntries - 1)
      .first('tweet_id')) as { tweet_id: string } | undefined;
    if (!oldestKept) continue;
    await tx(RECENT_TWEETS_TABLE)
      .where({ author_id: authorId })
      .andWhere('tweet_id', '<', oldestKept.tweet_id)
      .whereNotExists(tx(ENTRIES_TABLE).select(tx.raw('1')).whereRaw('??.?? = ??.??', [ENTRIES_TABLE, 'tweet_id', RECENT_TWEETS_TABLE, 'tweet_id']))
      .delete();
  }
}

/** One fixed-width UTC form, so that comparing the strings compares the instants. */
function utcInstant(at: string): string {
  return new Date(at).toISOString();
}

const HANDLED: readonly TimelineEvent[] = ['tweet.created', 'user.created', 'user.updated', 'user.followed', 'user.unfollowed'];

/** The timeline consumer with its cap: `handleBatch` applies a whole delivery batch in its one transaction. */
export function timelineWorkerWith(maxEntries: number): WorkerDefinition<TimelineEvent> {
  return {
    name: 'timeline',
    queue: 'timeline.events',
    bindings: [
      { exchange: 'tweets', routingKey: 'tweet.created' },
      { exchange: 'user.events', routingKey: '' },
    ],
    handles: HANDLED,
    handle: (message, tx, ctx) => applyTimelineEvents([message], tx, ctx, maxEntries),
    handleBatch: (messages, tx, ctx) => applyTimelineEvents(messages, tx, ctx, maxEntries),
  };
}

/**
 * `warren worker timeline`: the timeline service. It consumes tweets and
 * user events into home timelines in its own store, and serves them to the
 * API on `timeline.port` (src/workers/timelineHttp.ts).
 */
export const timelineWorker: WorkerDeclaration<TimelineEvent> = {
  ...timelineWorkerWith(DEFAULT_MAX_ENTRIES),
  database: { service: 'timeline', migrations: timelineMigrations },
  brokerUser: 'timeline',
  defaults: { retryAttempts: 5 },
  withCollaborators: ({ config }) => ({ worker: timelineWorkerWith(config.timeline.maxEntries), close: async () => undefined }),
  http: timelineHttp,
};
