/** @file Reading home timelines from the timeline service's own store (it is their only writer). */
import type { Knex } from 'knex';
import { AUTHORS_TABLE, ENTRIES_TABLE, RECENT_TWEETS_TABLE, SIZES_TABLE } from '../migrations/timeline';
import type { Tweet } from './tweets';

interface EntryRow {
  tweet_id: string;
  author_id: string;
  text: string;
  created_at: string;
  handle: string;
}

/**
 * A page of a user's home timeline, newest first (UUIDv7 ids: largest id
 * first), `limit + 1` rows so the caller knows whether a next page exists.
 * Never more than the newest `maxEntries`, even while the timeline holds a
 * few more awaiting their trim (src/workers/timeline.ts).
 */
export async function readHomeTimeline(db: Knex, userId: string, page: { limit: number; beforeId?: string }, maxEntries: number): Promise<Tweet[]> {
  const size = (await db(SIZES_TABLE).where({ user_id: userId }).first('entries')) as { entries: number | string } | undefined;
  let oldest: string | undefined;
  if (size && Number(size.entries) > maxEntries) {
    const row = (await db(ENTRIES_TABLE)
      .where({ user_id: userId })
      .orderBy('tweet_id', 'desc')
      .offset(maxEntries - 1)
      .first('tweet_id')) as { tweet_id: string } | undefined;
    oldest = row?.tweet_id;
  }
  const query = db(`${ENTRIES_TABLE} as e`)
    .join(`${RECENT_TWEETS_TABLE} as t`, 't.tweet_id', 'e.tweet_id')
    .join(`${AUTHORS_TABLE} as a`, 'a.user_id', 'e.author_id')
    .where('e.user_id', userId)
    .select('e.tweet_id', 'e.author_id', 't.text', 't.created_at', 'a.handle')
    .orderBy('e.tweet_id', 'desc')
    .limit(page.limit + 1);
  if (page.beforeId) query.andWhere('e.tweet_id', '<', page.beforeId);
  if (oldest) query.andWhere('e.tweet_id', '>=', oldest);
  return ((await query) as EntryRow[]).map((r) => ({ id: r.tweet_id, authorId: r.author_id, authorHandle: r.handle, text: r.text, createdAt: r.created_at }));
}
