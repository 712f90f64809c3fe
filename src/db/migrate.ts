import type { Knex } from 'knex';
import type { Config } from '../config';
import { apiMigrations } from './migrations/api';
import { analyticsMigrations } from './migrations/analytics';
import { notificationsMigrations } from './migrations/notifications';
import { openDatabase, Service, SERVICES } from './knex';

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
  if (config.database.client === 'postgres') {
    await db.schema.createSchemaIfNotExists(service);
  }
  const [, ran] = (await db.migrate.latest({
    migrationSource: migrationSourceFor(service),
    tableName: 'knex_migrations',
    ...(config.database.client === 'postgres' ? { schemaName: service } : {}),
  })) as [number, string[]];
  return ran;
}

/** `warren migrate`: every service's database. */
export async function migrateAll(config: Config, log: (msg: string) => void = () => {}): Promise<void> {
  for (const service of SERVICES) {
    const db = openDatabase(config, service);
    try {
      const ran = await migrateService(db, service, config);
      log(ran.length ? `${service}: applied ${ran.join(', ')}` : `${service}: up to date`);
    } finally {
      await db.destroy();
    }
  }
}
