import sqlite3 from 'sqlite3';
import { type Knex } from 'knex';
import { sqliteFile, type Service } from '../../src/db/knex';
import { openPostgres } from '../../src/db/postgres';
import type { Store } from './system';

/**
 * Read-only access to a service's database, for counting and timing what
 * Warren wrote. On SQLite it is a separate read-only connection (WAL lets it
 * read without blocking the writer); on PostgreSQL a one-connection pool.
 */
export interface Reader {
  all<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  close(): Promise<void>;
}

export function openReader(store: Store, service: Service): Reader {
  if (store.kind === 'postgres') {
    const db: Knex = openPostgres({ connectionString: store.config.database.url, schema: service, pool: { min: 0, max: 1 } });
    return {
      all: async <T>(sql: string, params: unknown[] = []) => (await db.raw(sql, params as Knex.RawBinding[])).rows as T[],
      close: () => db.destroy(),
    };
  }
  const db = new sqlite3.Database(sqliteFile(store.config, service), sqlite3.OPEN_READONLY);
  db.configure('busyTimeout', 5000);
  return {
    all: <T>(sql: string, params: unknown[] = []) =>
      new Promise<T[]>((resolve, reject) => db.all(sql, params, (err, rows) => (err ? reject(err) : resolve(rows as T[])))),
    close: () => new Promise<void>((resolve) => db.close(() => resolve())),
  };
}

export async function scalar(reader: Reader, sql: string, params: unknown[] = []): Promise<number> {
  const rows = await reader.all<Record<string, unknown>>(sql, params);
  const first = rows[0];
  return first ? Number(Object.values(first)[0] ?? 0) : 0;
}

/** Inbox records of the analytics worker: how many, and the first and last processed_at (ms). */
export async function processedSpan(reader: Reader): Promise<{ n: number; first: number; last: number }> {
  const rows = await reader.all<{ n: unknown; first: unknown; last: unknown }>(
    'SELECT count(*) AS n, min(processed_at) AS first, max(processed_at) AS last FROM processed_messages',
  );
  const r = rows[0]!;
  return { n: Number(r.n), first: Number(r.first), last: Number(r.last) };
}

/** Unsent outbox rows (the relay's backlog). */
export function outboxBacklog(reader: Reader): Promise<number> {
  return scalar(reader, 'SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL');
}
