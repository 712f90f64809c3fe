import Database from 'better-sqlite3';
import type { Knex } from 'knex';
import { holdSqliteFiles, sqliteFilename, sqliteLibraryOf } from '../knex';

/** Times are epoch milliseconds; PostgreSQL returns bigint columns as strings, hence the conversions. */
export interface TokenRecord {
  /** Public, random: how a user names the token to list or revoke it (never derived from the secret). */
  id: string;
  tokenHash: string;
  userId: string;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
  /** The UTC day (YYYY-MM-DD) of its last use; null until first used. */
  lastUsedDay: string | null;
}

interface TokenRow {
  id: string;
  token_hash: string;
  user_id: string;
  created_at: number | string;
  expires_at: number | string;
  revoked_at: number | string | null;
  last_used_day: string | null;
}

export async function insertToken(tx: Knex.Transaction, token: Omit<TokenRecord, 'revokedAt' | 'lastUsedDay'>): Promise<void> {
  await tx('tokens').insert({
    id: token.id,
    token_hash: token.tokenHash,
    user_id: token.userId,
    created_at: token.createdAt,
    expires_at: token.expiresAt,
  });
}

export type TokenWithHandle = TokenRecord & { handle: string };

type TokenWithHandleRow = TokenRow & { handle: string };

/** A token with its user's current handle (one lookup serves auth and the author of a tweet). */
export async function findToken(db: Knex, tokenHash: string): Promise<TokenWithHandle | undefined> {
  const [row] = await tokensWithHandles(db, [tokenHash]);
  return row && toRecord(row);
}

const TOKEN_WITH_HANDLE_COLUMNS = ['t.id', 't.token_hash', 't.user_id', 't.created_at', 't.expires_at', 't.revoked_at', 't.last_used_day', 'u.handle'];

function tokensWithHandles(db: Knex, tokenHashes: string[]): Promise<TokenWithHandleRow[]> {
  return db('tokens as t')
    .join('users as u', 'u.id', 't.user_id')
    .select(...TOKEN_WITH_HANDLE_COLUMNS)
    .whereIn('t.token_hash', tokenHashes);
}

function toRecord(row: TokenWithHandleRow): TokenWithHandle {
  return { ...fromRow(row), handle: row.handle };
}

function fromRow(row: TokenRow): TokenRecord {
  return {
    id: row.id,
    tokenHash: row.token_hash,
    userId: row.user_id,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
    lastUsedDay: row.last_used_day,
  };
}

const MAX_HASHES_PER_QUERY = 500;

/**
 * Token lookups of requests that arrive together, answered by one query at
 * the end of the event loop's turn instead of one each (the statement, not
 * the row, is what a lookup costs). Each request still sees the token as
 * the database has it when its query runs: nothing is cached.
 */
export class TokenLookups implements TokenFinder {
  private pending = new Map<string, { resolve(record: TokenWithHandle | undefined): void; reject(err: unknown): void }[]>();
  private scheduled = false;

  constructor(private readonly db: Knex) {}

  find(tokenHash: string): Promise<TokenWithHandle | undefined> {
    return new Promise((resolve, reject) => {
      const waiters = this.pending.get(tokenHash);
      if (waiters) waiters.push({ resolve, reject });
      else this.pending.set(tokenHash, [{ resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    this.scheduled = false;
    const hashes = [...batch.keys()];
    for (let i = 0; i < hashes.length; i += MAX_HASHES_PER_QUERY) {
      const chunk = hashes.slice(i, i + MAX_HASHES_PER_QUERY);
      try {
        const found = new Map((await tokensWithHandles(this.db, chunk)).map((row) => [row.token_hash, toRecord(row)]));
        for (const hash of chunk) for (const waiter of batch.get(hash)!) waiter.resolve(found.get(hash));
      } catch (err) {
        for (const hash of chunk) for (const waiter of batch.get(hash)!) waiter.reject(err);
      }
    }
  }
}

/** How a request finds its token: one of the two lookups below, by database. */
export interface TokenFinder {
  find(tokenHash: string): Promise<TokenWithHandle | undefined>;
}

// A read-only connection waits this long at most for a lock (a WAL reader
// almost never meets one): its statements run on the event loop's thread.
const PREPARED_READER_BUSY_MS = 20;

/**
 * SQLite: each lookup is one prepared statement on a read-only connection of
 * its own (better-sqlite3), run at once on this thread. A lookup then costs
 * a few microseconds and no turn of the event loop, where a pooled query
 * costs a trip to the thread pool and a turn for its answer. WAL lets it
 * read while the writer commits; nothing is cached, so a revocation shows
 * in the next lookup.
 */
export class PreparedTokenLookups implements TokenFinder {
  private statement: Database.Statement<[string], TokenWithHandleRow> | undefined;
  private connection: Database.Database | undefined;
  // Releases this process's record that better-sqlite3 has the file open (sqliteLibraryOf), while the connection is.
  private release: (() => void) | undefined;

  constructor(private readonly file: string) {}

  find(tokenHash: string): Promise<TokenWithHandle | undefined> {
    try {
      const row = this.prepared().get(tokenHash);
      return Promise.resolve(row && toRecord(row));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  close(): void {
    this.connection?.close();
    this.release?.();
    this.connection = undefined;
    this.statement = undefined;
    this.release = undefined;
  }

  private prepared(): Database.Statement<[string], TokenWithHandleRow> {
    if (this.statement) return this.statement;
    const connection = new Database(this.file, { readonly: true, fileMustExist: true });
    try {
      connection.pragma(`busy_timeout = ${PREPARED_READER_BUSY_MS}`);
      const columns = TOKEN_WITH_HANDLE_COLUMNS.map((c) => c.replace(/^(\w)\.(\w+)$/, '$1."$2"')).join(', ');
      this.statement = connection.prepare<[string], TokenWithHandleRow>(
        `SELECT ${columns} FROM tokens AS t JOIN users AS u ON u.id = t.user_id WHERE t.token_hash = ?`,
      );
    } catch (err) {
      connection.close();
      throw err;
    }
    this.connection = connection;
    this.release = holdSqliteFiles([this.file], 'better-sqlite3');
    return this.statement;
  }
}

/** The prepared lookup on a SQLite file, the batched one elsewhere (PostgreSQL, an in-memory database). */
export function tokenFinder(db: Knex): TokenFinder {
  const file = sqliteFilename(db);
  // better-sqlite3's prepared statement, unless this process has the file open with node-sqlite3: one SQLite library
  // per file in a process (sqliteLibraryOf).
  return file && sqliteLibraryOf(file) !== 'sqlite3' ? new PreparedTokenLookups(file) : new TokenLookups(db);
}

/** Revoking twice keeps the first revocation time. */
export async function revokeToken(db: Knex, tokenHash: string, now: number): Promise<void> {
  await db('tokens').where({ token_hash: tokenHash }).whereNull('revoked_at').update({ revoked_at: now });
}

/** Unrevoked and unexpired at `now`. */
function active(query: Knex.QueryBuilder, userId: string, now: number): Knex.QueryBuilder {
  return query.where({ user_id: userId }).whereNull('revoked_at').andWhere('expires_at', '>', now);
}

/** The user's active tokens, newest first. */
export async function listActiveTokens(db: Knex, userId: string, now: number): Promise<TokenRecord[]> {
  const rows = (await active(
    db('tokens').select('id', 'token_hash', 'user_id', 'created_at', 'expires_at', 'revoked_at', 'last_used_day'),
    userId,
    now,
  ).orderBy([
    { column: 'created_at', order: 'desc' },
    { column: 'id', order: 'desc' },
  ])) as TokenRow[];
  return rows.map(fromRow);
}

/**
 * Counted under a lock on the user's row, so that two hosts issuing tokens
 * to one user at once (PostgreSQL) cannot both pass the cap; on SQLite the
 * single writer already runs them one after the other. The no-op UPDATE is
 * that lock on both databases, without SQL only one of them understands.
 */
export async function countActiveTokensLocked(tx: Knex.Transaction, userId: string, now: number): Promise<number> {
  await tx('users').where({ id: userId }).update({ id: userId });
  const row = (await active(tx('tokens').count({ n: '*' }), userId, now).first()) as { n: number | string } | undefined;
  return Number(row?.n ?? 0);
}

/** false when the user has no token with that id; revoking twice keeps the first revocation time. */
export async function revokeTokenById(tx: Knex.Transaction, userId: string, tokenId: string, now: number): Promise<boolean> {
  const found = await tx('tokens').where({ id: tokenId, user_id: userId }).first('id');
  if (!found) return false;
  await tx('tokens').where({ id: tokenId, user_id: userId }).whereNull('revoked_at').update({ revoked_at: now });
  return true;
}

/** Every token of the user, the one presented included. */
export async function revokeUserTokens(tx: Knex.Transaction, userId: string, now: number): Promise<number> {
  return tx('tokens').where({ user_id: userId }).whereNull('revoked_at').update({ revoked_at: now });
}

/** Never moves a token's last-used day backwards (two hosts whose clocks straddle midnight). */
export async function markTokenUsed(tx: Knex.Transaction, tokenHash: string, day: string): Promise<number> {
  return tx('tokens')
    .where({ token_hash: tokenHash })
    .andWhere((q) => {
      q.whereNull('last_used_day').orWhere('last_used_day', '<', day);
    })
    .update({ last_used_day: day });
}
