import type { Knex } from 'knex';

/**
 * Read-only queries over the analytics and notifications read models. The
 * API never writes these tables (their workers own them); `withSchema`
 * reaches them as attached databases on SQLite and schemas on PostgreSQL.
 */
const ANALYTICS = 'analytics';
const NOTIFICATIONS = 'notifications';

export interface UserStats {
  tweetCount: number;
  lastTweetAt: string | null;
}

export interface TagCount {
  tag: string;
  count: number;
}

export interface MentionCount {
  handle: string;
  count: number;
}

export async function findUserStats(db: Knex, userId: string): Promise<UserStats> {
  const row = (await db.withSchema(ANALYTICS).from('user_stats').select('tweet_count', 'last_tweet_at').where('user_id', userId).first()) as
    { tweet_count: number | string; last_tweet_at: string | null } | undefined;
  // A user the worker has not seen yet simply has no tweets counted.
  return { tweetCount: Number(row?.tweet_count ?? 0), lastTweetAt: row?.last_tweet_at ?? null };
}

export async function topHashtagsOfUser(db: Knex, userId: string, limit: number): Promise<TagCount[]> {
  const rows = (await db
    .withSchema(ANALYTICS)
    .from('user_hashtags')
    .select('tag', 'count')
    .where('user_id', userId)
    .orderBy([
      { column: 'count', order: 'desc' },
      { column: 'tag', order: 'asc' },
    ])
    .limit(limit)) as { tag: string; count: number | string }[];
  return rows.map((r) => ({ tag: r.tag, count: Number(r.count) }));
}

export async function topMentionsOfUser(db: Knex, userId: string, limit: number): Promise<MentionCount[]> {
  const rows = (await db
    .withSchema(ANALYTICS)
    .from('user_mentions')
    .select('handle', 'count')
    .where('user_id', userId)
    .orderBy([
      { column: 'count', order: 'desc' },
      { column: 'handle', order: 'asc' },
    ])
    .limit(limit)) as { handle: string; count: number | string }[];
  return rows.map((r) => ({ handle: r.handle, count: Number(r.count) }));
}

/** Tags are stored case-folded by the analytics worker, so one row is one tag. */
export async function topHashtags(db: Knex, limit: number): Promise<TagCount[]> {
  const rows = (await db
    .withSchema(ANALYTICS)
    .from('hashtags')
    .select('tag', 'count')
    .orderBy([
      { column: 'count', order: 'desc' },
      { column: 'tag', order: 'asc' },
    ])
    .limit(limit)) as { tag: string; count: number | string }[];
  return rows.map((r) => ({ tag: r.tag, count: Number(r.count) }));
}

export interface AnalyticsTotals {
  tweets: number;
  usersWithTweets: number;
  hashtags: number;
}

export async function analyticsTotals(db: Knex): Promise<AnalyticsTotals> {
  const tweets = (await db.withSchema(ANALYTICS).from('user_stats').sum({ n: 'tweet_count' }).first()) as { n: number | string | null } | undefined;
  const users = (await db.withSchema(ANALYTICS).from('user_stats').where('tweet_count', '>', 0).count({ n: '*' }).first()) as
    { n: number | string } | undefined;
  const tags = (await db.withSchema(ANALYTICS).from('hashtags').count({ n: '*' }).first()) as { n: number | string } | undefined;
  return { tweets: Number(tweets?.n ?? 0), usersWithTweets: Number(users?.n ?? 0), hashtags: Number(tags?.n ?? 0) };
}

/** Hour buckets are keyed `YYYY-MM-DDTHH` (UTC), so string order is time order. */
export async function tweetsPerHourSince(db: Knex, firstHourKey: string): Promise<Map<string, number>> {
  const rows = (await db.withSchema(ANALYTICS).from('tweets_per_hour').select('hour', 'count').where('hour', '>=', firstHourKey)) as {
    hour: string;
    count: number | string;
  }[];
  return new Map(rows.map((r) => [r.hour, Number(r.count)]));
}

export interface Notification {
  id: string;
  kind: string;
  text: string;
  data: unknown;
  createdAt: string;
}

interface NotificationRow {
  id: string;
  kind: string;
  text: string;
  data: string;
  created_at: string;
}

function parseData(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return null;
  }
}

/** Newest first by id (UUIDv7); fetches `limit + 1` so the caller knows whether a next page exists. */
export async function listNotifications(db: Knex, userId: string, page: { limit: number; beforeId?: string }): Promise<Notification[]> {
  const query = db
    .withSchema(NOTIFICATIONS)
    .from('notifications')
    .select('id', 'kind', 'text', 'data', 'created_at')
    .where('user_id', userId)
    .orderBy('id', 'desc')
    .limit(page.limit + 1);
  if (page.beforeId) query.andWhere('id', '<', page.beforeId);
  const rows = (await query) as NotificationRow[];
  return rows.map((r) => ({ id: r.id, kind: r.kind, text: r.text, data: parseData(r.data), createdAt: r.created_at }));
}

/** A notification with its place in the user's stream (the SSE `id:`). */
export interface StreamedNotification extends Notification {
  position: number;
}

/**
 * Oldest first, strictly after `position` in the user's stream: what a
 * stream has not sent yet. Positions follow commit order (see
 * nextStreamPosition in src/workers/notifications.ts), so once a reader
 * has seen one, nothing below it can still appear.
 */
export async function listNotificationsAfter(db: Knex, userId: string, position: number, limit: number): Promise<StreamedNotification[]> {
  const rows = (await db
    .withSchema(NOTIFICATIONS)
    .from('notifications')
    .select('id', 'kind', 'text', 'data', 'created_at', 'seq')
    .where('user_id', userId)
    .andWhere('seq', '>', position)
    .orderBy('seq', 'asc')
    .limit(limit)) as (NotificationRow & { seq: number | string })[];
  return rows.map((r) => ({ id: r.id, kind: r.kind, text: r.text, data: parseData(r.data), createdAt: r.created_at, position: Number(r.seq) }));
}

/** The position of the user's newest stored notification (0: none yet). */
export async function latestStreamPosition(db: Knex, userId: string): Promise<number> {
  const row = (await db.withSchema(NOTIFICATIONS).from('notifications').where('user_id', userId).max({ seq: 'seq' }).first()) as
    { seq: number | string | null } | undefined;
  return Number(row?.seq ?? 0);
}

/**
 * The position a notification id stands for, for a client that still holds
 * an id from before streams sent positions: that notification's own, else
 * (an id this user has no notification under) the newest at or before it
 * in id order, which is where the id-ordered stream would have resumed.
 */
export async function streamPositionOfId(db: Knex, userId: string, notificationId: string): Promise<number> {
  const own = (await db.withSchema(NOTIFICATIONS).from('notifications').select('seq').where({ user_id: userId, id: notificationId }).first()) as
    { seq: number | string | null } | undefined;
  if (own?.seq != null) return Number(own.seq);
  const row = (await db
    .withSchema(NOTIFICATIONS)
    .from('notifications')
    .where('user_id', userId)
    .andWhere('id', '<=', notificationId)
    .max({ seq: 'seq' })
    .first()) as { seq: number | string | null } | undefined;
  return Number(row?.seq ?? 0);
}

/**
 * Where a stream starts for the `id:` a client last received: without one,
 * at the newest stored notification (what came before is not news). A
 * position past everything stored was never sent, by this API or any other
 * (one that was sent is committed): it is taken as the newest, so that a
 * made-up Last-Event-ID cannot make the client skip what is stored next.
 */
export async function streamStartPosition(db: Knex, userId: string, lastEventId?: string): Promise<number> {
  const latest = await latestStreamPosition(db, userId);
  if (lastEventId === undefined) return latest;
  const claimed = /^[0-9]+$/.test(lastEventId) ? Number(lastEventId) : await streamPositionOfId(db, userId, lastEventId);
  return Math.min(claimed, latest);
}
