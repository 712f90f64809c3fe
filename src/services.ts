import type { Knex } from 'knex';
import path from 'node:path';
import { ConfigError, loadConfigFor, projectRoot, type Config, type ServiceCatalogue } from './config';
import { apiMigrations } from './db/migrations/api';
import { consoleMigrations } from './db/migrations/console';
import { migrateDatabase, migrateDatabases, migrationSource, type ServiceDatabase } from './db/migrate';
import type { Service } from './db/knex';
import type { WorkerDeclaration } from './workers/declaration';
import { declaredWorkers } from './workers/registry';

/**
 * Every service that owns a database, in the order `warren migrate` brings
 * them up: the API, then each worker of src/workers/registry.ts with the
 * database its declaration names, then the operator console (its index of
 * parked messages, audit log and operator tokens). Each is the only writer
 * of its tables.
 */
export const DATABASES: readonly ServiceDatabase[] = [
  { service: 'api', migrations: apiMigrations },
  ...declaredWorkers.map((w) => w.database),
  // pg_trgm: the trigram index of the console's search (migration 003).
  { service: 'console', migrations: consoleMigrations, extensions: ['pg_trgm'] },
];

export const SERVICES: Service[] = DATABASES.map((d) => d.service);

function databaseOf(service: Service): ServiceDatabase {
  const database = DATABASES.find((d) => d.service === service);
  if (!database) throw new Error(`${service} is not a service with a database (${SERVICES.join(', ')})`);
  return database;
}

/** The migrations of one service's database, as knex reads them. */
export function migrationSourceFor(service: Service): Knex.MigrationSource<string> {
  return migrationSource(databaseOf(service).migrations);
}

/** Brings one service's database to the latest version; returns the migrations it ran. */
export function migrateService(db: Knex, service: Service, config: Config): Promise<string[]> {
  return migrateDatabase(db, databaseOf(service), config);
}

/** `warren migrate`: every service's database (see migrateDatabases for the roles on PostgreSQL). */
export function migrateAll(config: Config, log: (msg: string) => void = () => {}): Promise<void> {
  return migrateDatabases(config, DATABASES, log);
}

/** What configuration knows of Warren's services, from the worker declarations: the API's, each worker's and the console's keys, and each work queue's retry attempts. */
export const CATALOGUE: ServiceCatalogue = {
  brokerUsers: ['api', ...declaredWorkers.map((w) => w.brokerUser), 'console'],
  databaseServices: SERVICES,
  retryAttempts: Object.fromEntries(declaredWorkers.map((w) => [w.queue, w.defaults.retryAttempts])),
};

/**
 * Warren's configuration (see loadConfigFor): for a `worker` process, with
 * that worker's declared prefetch and handler timeout over default.json's.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, configDir = path.join(projectRoot, 'config'), worker?: WorkerDeclaration): Config {
  return loadConfigFor(CATALOGUE, env, configDir, worker?.defaults);
}

/** The configuration of this process (of `worker`'s process, with its declared defaults), or exit 2 with the one line. */
export function loadConfigOrExit(worker?: WorkerDeclaration): Config {
  try {
    return loadConfig(process.env, undefined, worker);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
