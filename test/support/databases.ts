import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { type Config } from '../../src/config';
import { openDatabase, type Service } from '../../src/db/knex';
import { openPostgres } from '../../src/db/postgres';
import { migrateService, migrationSourceFor, loadConfig } from '../../src/services';
import { newId } from '../../src/domain/ids';

/** A database a suite owns: a SQLite directory of its own, or a schema of its own on the shared PostgreSQL. */
export interface TestDatabase {
  db: Knex;
  close(): Promise<void>;
}

export interface TestBackend {
  name: string;
  open(): Promise<TestDatabase>;
}

/** A configured driver, or `thread`: the API writer's pool under `auto` (better-sqlite3 on a thread of its own). */
type SqliteDriver = Config['database']['sqliteDriver'] | 'thread';

/** What a suite creates in its fresh database: a service's migrations, or tables of its own. */
export type Prepare = { service: Service } | { create(db: Knex): Promise<unknown> };

export function sqliteTestDatabase(service: Service, prepare: Prepare, driver: SqliteDriver = 'sqlite3'): () => Promise<TestDatabase> {
  return async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `warren-${service}-`));
    const config = loadConfig({ WARREN_DATABASE_DIR: dir, WARREN_DATABASE_SQLITE_DRIVER: driver === 'thread' ? 'auto' : driver });
    const db = openDatabase(config, service, { writer: driver === 'thread' });
    if ('service' in prepare) await migrateService(db, prepare.service, config);
    else await prepare.create(db);
    return {
      db,
      async close() {
        await db.destroy();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  };
}

/**
 * A schema of its own on the shared server, migrated on the search path. Not
 * migrateService: with a postgres config it keeps knex_migrations in the
 * fixed service schema while the tables follow the search path, so a second
 * run would find the migrations "done" and create nothing in its fresh schema.
 */
export async function postgresTestDatabase(url: string, prepare: Prepare): Promise<TestDatabase> {
  const schema = `warren_test_${newId().replace(/-/g, '').slice(-12)}`;
  const admin = knexFactory({ client: 'pg', connection: url });
  await admin.raw('CREATE SCHEMA ??', [schema]);
  // Its schema set in each transaction, as Warren's own connections do (src/db/postgres.ts), so the suite also runs through a transaction pooler.
  const db = openPostgres({ connectionString: url, schema, pool: { min: 0, max: 4 } });
  if ('service' in prepare) await db.migrate.latest({ migrationSource: migrationSourceFor(prepare.service) });
  else await prepare.create(db);
  return {
    db,
    async close() {
      await db.destroy();
      await admin.raw('DROP SCHEMA ?? CASCADE', [schema]);
      await admin.destroy();
    },
  };
}

/** SQLite on each driver asked for, and PostgreSQL when WARREN_TEST_PG_URL names one. */
export function testBackends(service: Service, prepare: Prepare, drivers: SqliteDriver[] = ['sqlite3']): TestBackend[] {
  const backends: TestBackend[] = drivers.map((driver) => ({
    name: drivers.length > 1 ? `SQLite (${driver})` : 'SQLite',
    open: sqliteTestDatabase(service, prepare, driver),
  }));
  const pgUrl = process.env.WARREN_TEST_PG_URL;
  if (pgUrl) backends.push({ name: 'PostgreSQL', open: () => postgresTestDatabase(pgUrl, prepare) });
  return backends;
}
