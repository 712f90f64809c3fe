import { loadConfig } from '../../src/config';
import type { DbEnv } from './system';

/**
 * The SQLite drivers Warren can be configured with. knex's `better-sqlite3`
 * client is measured only when this build of Warren offers it as a
 * configuration choice (and the package is installed); otherwise the report
 * says it is not available.
 */
export function betterSqliteEnv(): DbEnv | undefined {
  try {
    require.resolve('better-sqlite3');
  } catch {
    return undefined;
  }
  const candidates: DbEnv[] = [
    { WARREN_DATABASE_DRIVER: 'better-sqlite3' },
    { WARREN_DATABASE_SQLITE_DRIVER: 'better-sqlite3' },
    { WARREN_DATABASE_CLIENT: 'better-sqlite3' },
  ];
  for (const env of candidates) {
    try {
      const config = loadConfig({ WARREN_DATABASE_CLIENT: 'sqlite', ...env });
      if (JSON.stringify(config.database).includes('better-sqlite3')) return env;
    } catch {
      // not this shape of option
    }
  }
  return undefined;
}
