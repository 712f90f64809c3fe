import type { Knex } from 'knex';
import type { Config } from '../config';
import { apiMigrations } from './migrations/api';
import { analyticsMigrations } from './migrations/analytics';
import { notificationsMigrations } from './migrations/notifications';
import knexFactory from 'knex';
import { openDatabase, Service, SERVICES } from './knex';
import { ensureServiceRoles, grantReadModelToApi, handSchemaToRole, serviceRole, usesServiceRoles } from './roles';

const migrationsOf: Record<Service, Record<string, Knex.Migration>> = {
  api: apiMigrations,
  analytics: analyticsMigrations,
  notifications: notificationsMigrations,
};

/** Migrations live in code, so the compiled CLI needs no migration directory. */
export function migrationSourceFor(service: Service): Knex.MigrationSource<string> {
  const migrations = migrationsOf[service];
  return {
    getMigrations: async () => Object.keys(migrations).sort(),
    getMigrationName: (name) => name,
    getMigration: async (name) => migrations[name]!,
  };
}

/** Brings one service's database to the latest version; returns the migrations it ran. */
export async function migrateService(db: Knex, service: Service, config: Config): Promise<string[]> {
  // Only when missing: CREATE SCHEMA IF NOT EXISTS still asks for CREATE on the database, which a service's role lacks.
  if (config.database.client === 'postgres' && !(await db.raw('SELECT 1 FROM pg_namespace WHERE nspname = ?', [service]) as { rows: unknown[] }).rows.length) {
    await db.schema.createSchemaIfNotExists(service);
  }
  const [, ran] = (await db.migrate.latest({
    migrationSource: migrationSourceFor(service),
    tableName: 'knex_migrations',
    ...(config.database.client === 'postgres' ? { schemaName: service } : {}),
  })) as [number, string[]];
  return ran;
}

/**
 * `warren migrate`: every service's database. With service roles
 * (database.roles.*, PostgreSQL) it connects with database.url as the
 * database owner, creates the roles or updates their passwords, gives each
 * service its schema and migrates it as that role (`SET ROLE`), so the role
 * owns every table; then lets the API's role read the read models.
 */
export async function migrateAll(config: Config, log: (msg: string) => void = () => {}): Promise<void> {
  const withRoles = usesServiceRoles(config);
  if (withRoles) {
    const owner = knexFactory({ client: 'pg', connection: { connectionString: config.database.url }, pool: { min: 0, max: 1 } });
    try {
      await ensureServiceRoles(owner, config);
      for (const service of SERVICES) {
        const role = serviceRole(config, service);
        if (role) await handSchemaToRole(owner, service, role);
      }
    } finally {
      await owner.destroy();
    }
  }
  for (const service of SERVICES) {
    const role = withRoles ? serviceRole(config, service) : undefined;
    // Without a role of its own, a service's schema stays the owner's (database.url's user), as it always was.
    const db = openDatabase(config, service, role ? { asRole: role } : {});
    try {
      const ran = await migrateService(db, service, config);
      if (withRoles) await grantReadModelToApi(db, config, service);
      log(ran.length ? `${service}: applied ${ran.join(', ')}` : `${service}: up to date`);
    } finally {
      await db.destroy();
    }
  }
}
