import type { Knex } from 'knex';
import type { TableRows } from '../groupCommit';

export interface TweetRow {
  id: string;
  author_id: string;
  text: string;
  created_at: string;
}

/** A tweet as the API shows it, with its author's current handle. */
export interface Tweet {
  id: string;
  authorId: string;
  authorHandle: string;
  text: string;
  createdAt: string;
}

interface TweetWithHandle extends TweetRow {
  author_handle: string;
}

function toTweet(row: TweetWithHandle): Tweet {
  return { id: row.id, authorId: row.author_id, authorHandle: row.author_handle, text: row.text, createdAt: row.created_at };
}

function tweetsWithHandles(db: Knex): Knex.QueryBuilder {
  return db('tweets as t').join('users as u', 'u.id', 't.author_id').select('t.id', 't.author_id', 't.text', 't.created_at', 'u.handle as author_handle');
}

/** Tweet rows for a write that merges its inserts with others (src/db/groupCommit.ts). */
export function tweetRows(rows: TweetRow[]): TableRows {
  return { table: 'tweets', rows: rows.map((r) => ({ ...r })) };
}

export async function findTweetById(db: Knex, id: string): Promise<Tweet | undefined> {
  const row = (await tweetsWithHandles(db).where('t.id', id).first()) as TweetWithHandle | undefined;
  return row && toTweet(row);
}

/**
 * The user's own tweets and those of everyone they follow, newest first.
 * Ids are UUIDv7, so "newest first" is "largest id first" and the id is the
 * page cursor. Fetches `limit + 1` so the caller knows whether a next page exists.
 */
export async function listTimeline(db: Knex, userId: string, page: { limit: number; beforeId?: string }): Promise<Tweet[]> {
  const query = tweetsWithHandles(db)
    .where((w) => {
      w.where('t.author_id', userId).orWhereIn('t.author_id', db('follows').select('followee_id').where('follower_id', userId));
    })
    .orderBy('t.id', 'desc')
    .limit(page.limit + 1);
  if (page.beforeId) query.andWhere('t.id', '<', page.beforeId);
  return ((await query) as TweetWithHandle[]).map(toTweet);
}
