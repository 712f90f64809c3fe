import type { DbEnv } from './system';

/**
 * The environment that runs Warren on knex's `better-sqlite3` client
 * (`database.sqliteDriver`), or undefined when the package is not installed
 * (the report then says it was not measured).
 */
export function betterSqliteEnv(): DbEnv | undefined {
  try {
    require.resolve('better-sqlite3');
  } catch {
    return undefined;
  }
  return { WARREN_DATABASE_SQLITE_DRIVER: 'better-sqlite3' };
}
