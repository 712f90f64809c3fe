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
/** SQLite: the trigram index of the parked messages' search text (src/console/searchIndex.ts). */
export const SEARCH_TABLE = 'parked_search';
/** Replays and discards with their progress, while they run and after (src/console/actionProgress.ts). */
export const ACTIONS_TABLE = 'console_actions';
/** PostgreSQL: the GIN index over search_text. */
const SEARCH_GIN_INDEX = 'parked_messages_search_trgm';

function isPostgres(knex: Knex): boolean {
  return (knex.client as { dialect?: unknown }).dialect === 'postgresql';
}

/** FTS5's trigram tokenizer came with SQLite 3.34. */
async function checkTrigramTokenizer(knex: Knex): Promise<void> {
  const [{ version }] = (await knex.raw('SELECT sqlite_version() AS version')) as [{ version: string }];
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major < 3 || (major === 3 && minor < 34))
    throw new Error(`the console's search index needs SQLite 3.34 or later (FTS5 with the trigram tokenizer); this driver bundles SQLite ${version}`);
}

/**
 * pg_trgm in whichever schema holds it, created if missing when this
 * session may (a superuser, or CREATE on the database: it is a trusted
 * extension). `warren migrate` with service roles creates it as the owner
 * first (src/db/migrate.ts), since a service's role may not.
 */
async function trigramSchema(knex: Knex): Promise<string> {
  const find = async () =>
    (
      (await knex.raw("SELECT n.nspname AS schema FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'")) as {
        rows: { schema: string }[];
      }
    ).rows[0]?.schema;
  const found = await find();
  if (found) return found;
  const may = (
    (await knex.raw("SELECT rolsuper OR has_database_privilege(current_database(), 'CREATE') AS may FROM pg_roles WHERE rolname = current_user")) as {
      rows: { may: boolean }[];
    }
  ).rows[0]?.may;
  const available = ((await knex.raw("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")) as { rows: unknown[] }).rows.length > 0;
  if (!available)
    throw new Error(
      "the console's search index needs PostgreSQL's pg_trgm extension, which this server does not have: install its contrib package (postgresql-contrib)",
    );
  if (!may)
    throw new Error(
      "the console's search index needs PostgreSQL's pg_trgm extension: run CREATE EXTENSION pg_trgm in this database as its owner (warren migrate does it when it connects as the owner)",
    );
  await knex.raw('CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public');
  return (await find()) ?? 'public';
}

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
  /**
   * Search without reading every row: a trigram index of search_text, so a
   * word is still found anywhere in body and headers. On PostgreSQL pg_trgm's
   * GIN index, which the planner uses for the LIKE search already runs; on
   * SQLite a contentless FTS5 table (index only, no second copy of the
   * text) keyed by search_rowid, which the indexer fills in the same
   * transaction as each park's row (src/console/parkedIndex.ts).
   */
  '003_search_index': {
    async up(knex) {
      if (isPostgres(knex)) {
        const schema = await trigramSchema(knex);
        await knex.raw(`CREATE INDEX ?? ON ?? USING gin (search_text ${quoteIdent(schema)}.gin_trgm_ops)`, [SEARCH_GIN_INDEX, PARKED_TABLE]);
        return;
      }
      await checkTrigramTokenizer(knex);
      await knex.schema.alterTable(PARKED_TABLE, (t) => {
        t.bigInteger('search_rowid');
        t.unique(['search_rowid']);
      });
      // detail=none: which rows hold a trigram, not where; the LIKE on search_text decides.
      await knex.raw(`CREATE VIRTUAL TABLE ?? USING fts5(search_text, content='', tokenize='trigram', detail='none')`, [SEARCH_TABLE]);
      await knex.raw('INSERT INTO ?? (rowid, search_text) SELECT rowid, search_text FROM ??', [SEARCH_TABLE, PARKED_TABLE]);
      await knex.raw('UPDATE ?? SET search_rowid = rowid', [PARKED_TABLE]);
    },
    async down(knex) {
      if (isPostgres(knex)) {
        await knex.raw('DROP INDEX IF EXISTS ??', [SEARCH_GIN_INDEX]);
        return;
      }
      await knex.raw('DROP TABLE IF EXISTS ??', [SEARCH_TABLE]);
      await knex.schema.alterTable(PARKED_TABLE, (t) => {
        t.dropUnique(['search_rowid']);
        t.dropColumn('search_rowid');
      });
    },
  },
  '004_actions': {
    async up(knex) {
      await knex.schema.createTable(ACTIONS_TABLE, (t) => {
        t.string('id', 36).primary();
        t.string('action', 20).notNullable();
        t.string('actor', 100).notNullable();
        t.string('state', 20).notNullable();
        t.integer('total').notNullable();
        t.integer('taken').notNullable().defaultTo(0);
        t.integer('stale').notNullable().defaultTo(0);
        t.integer('not_found').notNullable().defaultTo(0);
        t.text('error');
        t.bigInteger('started_at').notNullable();
        t.bigInteger('updated_at').notNullable();
        t.bigInteger('finished_at');
        t.index(['started_at']);
      });
    },
    async down(knex) {
      await knex.schema.dropTableIfExists(ACTIONS_TABLE);
    },
  },
};

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
