import knexFactory, { type Knex } from 'knex';
import type { Config } from '../../src/config';
import { holdSqliteFiles, sqliteFile, sqliteLibraryFor, sqliteLibraryOf, sqliteRunner, type Service } from '../../src/db/knex';
import { openPostgres } from '../../src/db/postgres';

/**
 * Holds a write lock on one service's store from outside Warren, the way a
 * long migration or a stuck backup would: that service's writes block (and
 * fail once their wait runs out) until it is released.
 */
export async function lockStore(config: Config, service: Service, table: string): Promise<() => Promise<void>> {
  let db: Knex;
  let releaseFile = () => {};
  if (config.database.client === 'postgres') {
    db = openPostgres({ connectionString: config.database.url, schema: service, pool: { min: 1, max: 1 } });
  } else {
    // The SQLite library this process opens the store with (openDatabase, to count what was committed): two copies
    // of SQLite in one process do not see each other's locks, and one closing the file drops the other's POSIX lock,
    // which would end this lock the first time the test reads the store. Other processes see it whichever they use.
    const file = sqliteFile(config, service);
    const library = sqliteLibraryOf(file) ?? sqliteLibraryFor(sqliteRunner(config.database.sqliteDriver, {}));
    releaseFile = holdSqliteFiles([file], library);
    db = knexFactory({
      client: library,
      connection: { filename: file },
      useNullAsDefault: true,
      pool: { min: 1, max: 1 },
    });
  }
  const trx = await db.transaction();
  if (config.database.client === 'postgres') {
    await trx.raw(`LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
  } else {
    // Any write inside the transaction takes SQLite's single writer lock until rollback.
    await trx(table)
      .where(knexFactory({ client: 'sqlite3', useNullAsDefault: true }).raw('0'))
      .delete();
  }
  return async () => {
    await trx.rollback().catch(() => undefined);
    await db.destroy();
    releaseFile();
  };
}

/** The analytics handler's first write is its inbox record. */
export function lockAnalyticsStore(config: Config): Promise<() => Promise<void>> {
  return lockStore(config, 'analytics', 'processed_messages');
}
