import type { Knex } from 'knex';
import { PermanentError } from '../domain/errors';
import type { WarrenMessage } from '../domain/messages';
import { extractHashtags, extractMentions, HANDLE_PATTERN } from '../domain/text';
import type { WorkerDefinition } from '../broker/handler';

/** Width of the `tag` columns (see migrations/analytics.ts); PostgreSQL enforces it, SQLite does not. */
const TAG_MAX_CHARS = 100;

/**
 * Folds one tweet into the analytics read model. Every statement is an
 * upsert that adds to what is there, so tweets may arrive in any order and
 * from any number of competing workers; exactly-once is the consumer's
 * inbox record, written in this same transaction.
 */
export async function analyticsHandler(message: WarrenMessage<'tweet.created'>, tx: Knex.Transaction): Promise<void> {
  const { authorId, authorHandle, text, createdAt } = message.body;
  // A handle the column cannot hold would fail on every retry: park it at once.
  if (!HANDLE_PATTERN.test(authorHandle)) throw new PermanentError(`authorHandle ${JSON.stringify(authorHandle)} is not a valid handle`);
  // One fixed-width UTC form, so that comparing the strings compares the instants.
  const at = new Date(createdAt).toISOString();

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
  const isNewest = 'user_stats.last_tweet_at IS NULL OR user_stats.last_tweet_at <= excluded.last_tweet_at';
  await tx('user_stats')
    .insert({ user_id: userId, handle, tweet_count: 1, last_tweet_at: at })
    .onConflict('user_id')
    .merge({
      tweet_count: plusOne(tx, 'user_stats', 'tweet_count'),
      last_tweet_at: tx.raw(`CASE WHEN ${isNewest} THEN excluded.last_tweet_at ELSE user_stats.last_tweet_at END`),
      handle: tx.raw(`CASE WHEN ${isNewest} THEN excluded.handle ELSE user_stats.handle END`),
    });
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

export const analyticsWorker: WorkerDefinition<'tweet.created'> = {
  name: 'analytics',
  queue: 'analytics.tweets',
  bindings: [{ exchange: 'tweets', routingKey: 'tweet.*' }],
  handles: ['tweet.created'],
  handle: analyticsHandler,
};
