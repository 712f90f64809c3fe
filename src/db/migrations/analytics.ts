import type { Knex } from 'knex';
import { createInboxTable, INBOX_TABLE } from '../inbox';

/** The analytics worker's read model, served by /analytics/*. */
export const analyticsMigrations: Record<string, Knex.Migration> = {
  '001_initial': {
    async up(knex) {
      await createInboxTable(knex);
      await knex.schema.createTable('user_stats', (t) => {
        t.string('user_id', 36).primary();
        t.string('handle', 30).notNullable();
        t.integer('tweet_count').notNullable().defaultTo(0);
        t.string('last_tweet_at', 30);
      });
      await knex.schema.createTable('user_hashtags', (t) => {
        t.string('user_id', 36).notNullable();
        t.string('tag', 100).notNullable();
        t.integer('count').notNullable().defaultTo(0);
        t.primary(['user_id', 'tag']);
      });
      await knex.schema.createTable('user_mentions', (t) => {
        t.string('user_id', 36).notNullable();
        t.string('handle', 30).notNullable();
        t.integer('count').notNullable().defaultTo(0);
        t.primary(['user_id', 'handle']);
      });
      await knex.schema.createTable('hashtags', (t) => {
        t.string('tag', 100).primary();
        t.integer('count').notNullable().defaultTo(0);
        t.index(['count']);
      });
      await knex.schema.createTable('tweets_per_hour', (t) => {
        t.string('hour', 13).primary(); // 2026-11-25T09 (UTC)
        t.integer('count').notNullable().defaultTo(0);
      });
    },
    async down(knex) {
      for (const table of ['tweets_per_hour', 'hashtags', 'user_mentions', 'user_hashtags', 'user_stats', INBOX_TABLE]) {
        await knex.schema.dropTableIfExists(table);
      }
    },
  },
};
