import type { Knex } from 'knex';
import { MAX_REQUEST_ID_LENGTH } from '../../domain/ids';

/** The API's tables: users, tokens, follows, tweets, the outbox and HTTP idempotency keys. */
export const apiMigrations: Record<string, Knex.Migration> = {
  '001_initial': {
    async up(knex) {
      await knex.schema.createTable('users', (t) => {
        t.string('id', 36).primary();
        t.string('handle', 30).notNullable();
        t.string('handle_key', 30).notNullable().unique();
        t.string('display_name', 100).notNullable();
        t.text('bio');
        t.string('created_at', 30).notNullable();
        t.string('updated_at', 30).notNullable();
      });
      await knex.schema.createTable('tokens', (t) => {
        t.string('token_hash', 64).primary();
        t.string('user_id', 36).notNullable().references('id').inTable('users');
        t.bigInteger('created_at').notNullable();
        t.bigInteger('expires_at').notNullable();
        t.bigInteger('revoked_at');
        t.index(['user_id']);
      });
      await knex.schema.createTable('follows', (t) => {
        t.string('follower_id', 36).notNullable().references('id').inTable('users');
        t.string('followee_id', 36).notNullable().references('id').inTable('users');
        t.string('created_at', 30).notNullable();
        t.primary(['follower_id', 'followee_id']);
        t.index(['followee_id']);
      });
      await knex.schema.createTable('tweets', (t) => {
        t.string('id', 36).primary();
        t.string('author_id', 36).notNullable().references('id').inTable('users');
        t.text('text').notNullable();
        t.string('created_at', 30).notNullable();
        t.index(['author_id', 'id']);
      });
      await knex.schema.createTable('outbox', (t) => {
        t.increments('seq').primary();
        t.string('message_id', 36).notNullable().unique();
        t.string('type', 50).notNullable();
        t.string('exchange', 100).notNullable();
        t.string('routing_key', 100).notNullable();
        t.text('payload').notNullable();
        t.string('correlation_id', 100);
        t.string('traceparent', 60).notNullable();
        t.string('schema_version', 10).notNullable();
        t.bigInteger('created_at').notNullable();
        t.string('claimed_by', 100);
        t.bigInteger('claimed_at');
        t.bigInteger('sent_at');
        t.integer('attempts').notNullable().defaultTo(0);
        t.text('last_error');
        t.index(['sent_at', 'seq']);
      });
      await knex.schema.createTable('idempotency_keys', (t) => {
        t.string('caller', 64).notNullable();
        t.string('key', 64).notNullable();
        t.string('request_hash', 64).notNullable();
        t.integer('status').notNullable();
        t.text('response').notNullable();
        t.bigInteger('created_at').notNullable();
        t.primary(['caller', 'key']);
        t.index(['created_at']);
      });
    },
    async down(knex) {
      for (const table of ['idempotency_keys', 'outbox', 'tweets', 'follows', 'tokens', 'users']) {
        await knex.schema.dropTableIfExists(table);
      }
    },
  },
  // Every request id the API accepts fits its events' correlation id (it was 100 wide, shorter than the ids let through).
  '003_request_id_length': {
    async up(knex) {
      await knex.schema.alterTable('outbox', (t) => {
        t.string('correlation_id', MAX_REQUEST_ID_LENGTH).alter();
      });
    },
    async down(knex) {
      await knex.schema.alterTable('outbox', (t) => {
        t.string('correlation_id', 100).alter();
      });
    },
  },
};
