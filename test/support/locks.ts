import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import type { Config } from '../../src/config';

/**
 * Holds a write lock on the analytics store from outside Warren, the way a
 * long migration or a stuck backup would: the analytics handler's writes
 * block until it is released.
 */
export async function lockAnalyticsStore(config: Config): Promise<() => Promise<void>> {
  let db: Knex;
  if (config.database.client === 'postgres') {
    db = knexFactory({ client: 'pg', connection: config.database.url, searchPath: ['analytics'], pool: { min: 1, max: 1 } });
  } else {
    db = knexFactory({ client: 'sqlite3', connection: { filename: path.join(config.database.dir, 'analytics.sqlite') }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
  }
  const trx = await db.transaction();
  if (config.database.client === 'postgres') {
    await trx.raw('LOCK TABLE processed_messages IN ACCESS EXCLUSIVE MODE');
  } else {
    // A write inside the transaction takes SQLite's single writer lock until rollback.
    await trx('processed_messages').insert({ consumer: 'lock-holder', message_id: 'lock', processed_at: 0 });
  }
  return async () => {
    await trx.rollback().catch(() => undefined);
    await db.destroy();
  };
}
