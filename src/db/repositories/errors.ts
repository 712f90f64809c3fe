/** @file
 * Database failures the API answers in a particular way, recognised the same
 * way on SQLite and PostgreSQL so callers never look at driver codes.
 */

interface DriverError {
  code?: unknown;
  name?: unknown;
  message?: unknown;
}

function asDriverError(err: unknown): DriverError | null {
  return typeof err === 'object' && err !== null ? (err as DriverError) : null;
}

/** A unique or primary-key constraint refused the write (a concurrent twin got there first). */
export function isUniqueViolation(err: unknown): boolean {
  const e = asDriverError(err);
  if (!e) return false;
  if (e.code === '23505') return true; // PostgreSQL unique_violation
  return sqliteBaseCode(e.code) === 'SQLITE_CONSTRAINT' && typeof e.message === 'string' && e.message.includes('UNIQUE constraint failed');
}

/**
 * node-sqlite3 reports primary result codes (`SQLITE_BUSY`), better-sqlite3
 * extended ones (`SQLITE_BUSY_SNAPSHOT`, `SQLITE_CONSTRAINT_UNIQUE`): both
 * are read as the primary code.
 */
function sqliteBaseCode(code: unknown): string | undefined {
  if (typeof code !== 'string') return undefined;
  return /^SQLITE_[A-Z]+/.exec(code)?.[0];
}

// Busy or locked by another writer, the file unreadable or full: retrying later can succeed.
const SQLITE_UNAVAILABLE = new Set(['SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_CANTOPEN', 'SQLITE_IOERR', 'SQLITE_FULL', 'SQLITE_PROTOCOL']);
const NETWORK_UNAVAILABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN']);
// PostgreSQL: serialization failure, deadlock, lock not available.
const PG_RETRYABLE = new Set(['40001', '40P01', '55P03']);

/**
 * The database cannot answer now (busy, locked, unreachable, out of
 * connections), as opposed to a query that is wrong. Such a failure is
 * answered 503 with Retry-After; the transaction it interrupted rolled back.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = asDriverError(err);
  if (!e) return false;
  if (e.name === 'KnexTimeoutError') return true; // no pooled connection in time
  if (e.code === 'WARREN_WRITER_THREAD') return true; // the SQLite writer's thread is gone (src/db/sqliteThread.ts)
  if (typeof e.code === 'string') {
    if (SQLITE_UNAVAILABLE.has(sqliteBaseCode(e.code) ?? '') || NETWORK_UNAVAILABLE.has(e.code) || PG_RETRYABLE.has(e.code)) return true;
    // PostgreSQL classes 08 (connection), 53 (insufficient resources), 57P (shutting down, cannot connect now).
    if (/^(08|53)[0-9A-Z]{3}$/.test(e.code) || /^57P0[1-4]$/.test(e.code)) return true;
  }
  return typeof e.message === 'string' && /Connection terminated|not queryable|Unable to acquire a connection/i.test(e.message);
}

/**
 * Unavailable for every statement the connection would run now (busy or
 * locked, unreachable, out of space, the writer's thread gone), as opposed
 * to one statement's conflict: a PostgreSQL deadlock or serialization
 * failure fails only the statement (and its savepoint) that met it, and
 * the others of its transaction can still commit.
 */
export function isUnavailableForAll(err: unknown): boolean {
  const code = asDriverError(err)?.code;
  return isDatabaseUnavailable(err) && !(typeof code === 'string' && PG_RETRYABLE.has(code));
}
