/** @file
 * The operator console's database: the index of parked messages (filled by
 * its indexer from `warren.parked.index`), the audit log of operators'
 * actions, and the operator tokens (kept as SHA-256 hashes only).
 */
import type { Knex } from 'knex';

export const PARKED_TABLE = 'parked_messages';
export const AUDIT_TABLE = 'audit_log';
export const OPERATOR_TOKENS_TABLE = 'operator_tokens';
export const SESSIONS_TABLE = 'operator_sessions';

export const consoleMigrations: Record<string, Knex.Migration> = {
  '001_initial': {
    async up(knex) {
      await knex.schema.createTable(PARKED_TABLE, (t) => {
        t.string('id', 36).primary();
        // One row per park, however often its copy reaches the index (see parkRecord.ts).
        t.string('park_key', 64).notNullable().unique();
        t.string('queue', 255).notNullable();
        t.string('original_queue', 255);
        t.string('message_id', 255);
        t.string('type', 255);
        t.string('kind', 20).notNullable();
        t.integer('attempts');
        t.text('reason');
        t.string('first_failure', 40);
        t.string('last_failure', 40);
        t.bigInteger('parked_at').notNullable();
        t.bigInteger('since');
        t.bigInteger('indexed_at').notNullable();
        t.text('body').notNullable();
        t.string('body_encoding', 10).notNullable();
        t.text('headers').notNullable();
        t.text('properties').notNullable();
        t.text('search_text').notNullable();
        t.integer('replay_count').notNullable().defaultTo(0);
        t.string('replay_id', 64);
        t.string('status', 20).notNullable();
        t.bigInteger('status_at');
        t.string('status_by', 100);
        t.string('status_action', 36);
        t.index(['status', 'parked_at']);
        t.index(['queue', 'parked_at']);
        t.index(['message_id']);
      });
      await knex.schema.createTable(AUDIT_TABLE, (t) => {
        t.string('id', 36).primary();
        t.bigInteger('at').notNullable();
        t.string('actor', 100).notNullable();
        t.string('role', 20).notNullable();
        t.string('action', 50).notNullable();
        t.text('selection').notNullable();
        t.integer('count').notNullable();
        t.string('outcome', 20).notNullable();
        t.text('result').notNullable();
        t.index(['at']);
      });
      await knex.schema.createTable(OPERATOR_TOKENS_TABLE, (t) => {
        t.string('id', 36).primary();
        t.string('name', 100).notNullable().unique();
        t.string('token_hash', 64).notNullable().unique();
        t.string('role', 20).notNullable();
        t.bigInteger('created_at').notNullable();
        t.bigInteger('revoked_at');
      });
    },
    async down(knex) {
      await knex.schema.dropTableIfExists(OPERATOR_TOKENS_TABLE);
      await knex.schema.dropTableIfExists(AUDIT_TABLE);
      await knex.schema.dropTableIfExists(PARKED_TABLE);
    },
  },
  /** Sign-in sessions of the console's pages: the cookie's secret kept only as its hash, tied to the token signed in with. */
  '002_sessions': {
    async up(knex) {
      await knex.schema.createTable(SESSIONS_TABLE, (t) => {
        t.string('id_hash', 64).primary();
        t.string('token_id', 36).notNullable().index();
        t.bigInteger('created_at').notNullable();
        t.bigInteger('expires_at').notNullable();
      });
    },
    async down(knex) {
      await knex.schema.dropTableIfExists(SESSIONS_TABLE);
    },
  },
};
