import type { Knex } from 'knex';
import { MAX_REQUEST_ID_LENGTH, newId } from '../../domain/ids';
import { sealClearIdempotencyRecords } from '../repositories/idempotency';
import { MAX_TRACESTATE_LENGTH } from '../../observability/traceContext';

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
  /**
   * Tokens get a public id (random, not derived from the secret) by which a
   * user lists and revokes them, and the UTC day they were last used. The
   * Idempotency-Key records written so far are sealed (see idempotency.ts).
   */
  '002_token_management': {
    async up(knex) {
      await knex.schema.alterTable('tokens', (t) => {
        t.string('id', 36);
        t.string('last_used_day', 10);
      });
      const existing = await knex('tokens').select('token_hash');
      for (const { token_hash } of existing as { token_hash: string }[]) {
        await knex('tokens').where({ token_hash }).update({ id: newId() });
      }
      await knex.schema.alterTable('tokens', (t) => {
        t.unique(['id']);
      });
      await sealClearIdempotencyRecords(knex);
    },
    async down(knex) {
      // The code before this version cannot open a sealed record: it would answer its repeat as new.
      await knex('idempotency_keys').where('response', 'like', 'v1.%').delete();
      await knex.schema.alterTable('tokens', (t) => {
        t.dropUnique(['id']);
        t.dropColumn('last_used_day');
        t.dropColumn('id');
      });
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
  /**
   * An event keeps its trace's vendor entries (W3C `tracestate`, at most the
   * 512 characters Warren passes on) beside its traceparent, so the relay's
   * publish continues the request's trace whenever it is sent.
   */
  '004_outbox_tracestate': {
    async up(knex) {
      await knex.schema.alterTable('outbox', (t) => {
        t.string('tracestate', MAX_TRACESTATE_LENGTH);
      });
    },
    async down(knex) {
      await knex.schema.alterTable('outbox', (t) => {
        t.dropColumn('tracestate');
      });
    },
  },
};
