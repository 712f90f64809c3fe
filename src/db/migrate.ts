import type { Knex } from 'knex';
import type { Config } from '../config';
import knexFactory from 'knex';
import { openDatabase, Service } from './knex';
import { ensureServiceRoles, grantReadModelToApi, handSchemaToRole, serviceRole, usesServiceRoles } from './roles';

/** Versioned migrations by name, applied in name order. */
export type Migrations = Record<string, Knex.Migration>;

/** A service's own database: its SQLite file or PostgreSQL schema (and role) is named after it, and these migrations make it. */
export interface ServiceDatabase {
  service: Service;
  migrations: Migrations;
  /** PostgreSQL extensions its migrations use, created by the database owner before them (a service's role may not create one). */
  extensions?: readonly string[];
}

/** Migrations live in code, so the compiled CLI needs no migration directory. */
export function migrationSource(migrations: Migrations): Knex.MigrationSource<string> {
  return {
    getMigrations: async () => Object.keys(migrations).sort(),
    getMigrationName: (name) => name,
    getMigration: async (name) => migrations[name]!,
  };
}

/** Brings one service's database to the latest version; returns the migrations it ran. */
export async function migrateDatabase(db: Knex, { service, migrations }: ServiceDatabase, config: Config): Promise<string[]> {
  // Only when missing: CREATE SCHEMA IF NOT EXISTS still asks for CREATE on the database, which a service's role lacks.
  if (
    config.database.client === 'postgres' &&
    !((await db.raw('SELECT 1 FROM pg_namespace WHERE nspname = ?', [service])) as { rows: unknown[] }).rows.length
  ) {
    await db.schema.createSchemaIfNotExists(service);
  }
  const [, ran] = (await db.migrate.latest({
    migrationSource: migrationSource(migrations),
    tableName: 'knex_migrations',
    ...(config.database.client === 'postgres' ? { schemaName: service } : {}),
  })) as [number, string[]];
  return ran;
}

/**
 * `warren migrate`: each of these databases, in order. With service roles
 * (database.roles.*, PostgreSQL) it connects with database.url as the
 * database owner, creates the roles or updates their passwords, gives each
 * service its schema and migrates it as that role (`SET ROLE`), so the role
 * owns every table; then lets the API's role read the read models.
 */
export async function migrateDatabases(config: Config, databases: readonly ServiceDatabase[], log: (msg: string) => void = () => {}): Promise<void> {
  const withRoles = usesServiceRoles(config);
  if (withRoles) {
    const owner = knexFactory({ client: 'pg', connection: { connectionString: config.database.url }, pool: { min: 0, max: 1 } });
    try {
      await ensureServiceRoles(owner, config);
      for (const extension of new Set(databases.flatMap((d) => d.extensions ?? []))) await owner.raw('CREATE EXTENSION IF NOT EXISTS ??', [extension]);
      for (const { service } of databases) {
        const role = serviceRole(config, service);
        if (role) await handSchemaToRole(owner, service, role);
      }
    } finally {
      await owner.destroy();
    }
  }
  for (const database of databases) {
    const { service } = database;
    const role = withRoles ? serviceRole(config, service) : undefined;
    // Without a role of its own, a service's schema stays the owner's (database.url's user), as it always was.
    const db = openDatabase(config, service, role ? { asRole: role } : {});
    try {
      const ran = await migrateDatabase(db, database, config);
      if (withRoles) await grantReadModelToApi(db, config, service);
      log(ran.length ? `${service}: applied ${ran.join(', ')}` : `${service}: up to date`);
    } finally {
      await db.destroy();
    }
  }
}
