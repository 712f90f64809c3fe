/** @file The timeline service's tables: the follow graph and recent tweets it needs, and the home timelines it serves. */
import type { Knex } from 'knex';
import { createInboxTable, INBOX_TABLE } from '../inbox';

/** Who follows whom, as the events last said, with the time of that event (a late, older event changes nothing). */
export const FOLLOWS_TABLE = 'follows';
/** Each author's newest tweets (up to timeline.maxEntries), what a follow backfills from, and the text timelines show. */
export const RECENT_TWEETS_TABLE = 'recent_tweets';
/** Each user's handle, from the newest event that named it. */
export const AUTHORS_TABLE = 'authors';
/** The home timelines: one row per tweet in a user's timeline. */
export const ENTRIES_TABLE = 'timeline_entries';
/** How many entries each timeline holds, kept with every insert and delete, so a trim reads no count. */
export const SIZES_TABLE = 'timeline_sizes';

export const timelineMigrations: Record<string, Knex.Migration> = {
  '001_initial': {
    async up(knex) {
      await createInboxTable(knex);
      await knex.schema.createTable(FOLLOWS_TABLE, (t) => {
        t.string('follower_id', 36).notNullable();
        t.string('followee_id', 36).notNullable();
        t.boolean('following').notNullable();
        t.string('changed_at', 30).notNullable();
        t.primary(['follower_id', 'followee_id']);
        t.index(['followee_id', 'following']);
      });
      await knex.schema.createTable(RECENT_TWEETS_TABLE, (t) => {
        t.string('tweet_id', 36).primary();
        t.string('author_id', 36).notNullable();
        t.text('text').notNullable();
        t.string('created_at', 30).notNullable();
        t.index(['author_id', 'tweet_id']);
      });
      await knex.schema.createTable(AUTHORS_TABLE, (t) => {
        t.string('user_id', 36).primary();
        t.string('handle', 30).notNullable();
        t.string('handle_at', 30).notNullable();
      });
      await knex.schema.createTable(ENTRIES_TABLE, (t) => {
        t.string('user_id', 36).notNullable();
        t.string('tweet_id', 36).notNullable();
        t.string('author_id', 36).notNullable();
        t.primary(['user_id', 'tweet_id']);
        t.index(['user_id', 'author_id']);
        t.index(['tweet_id']);
      });
      await knex.schema.createTable(SIZES_TABLE, (t) => {
        t.string('user_id', 36).primary();
        t.integer('entries').notNullable();
      });
    },
    async down(knex) {
      for (const table of [SIZES_TABLE, ENTRIES_TABLE, AUTHORS_TABLE, RECENT_TWEETS_TABLE, FOLLOWS_TABLE, INBOX_TABLE]) {
        await knex.schema.dropTableIfExists(table);
      }
    },
  },
};
