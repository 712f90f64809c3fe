import type { Knex } from 'knex';

/** Times are epoch milliseconds; PostgreSQL returns bigint columns as strings, hence the conversions. */
export interface TokenRecord {
  tokenHash: string;
  userId: string;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
}

interface TokenRow {
  token_hash: string;
  user_id: string;
  created_at: number | string;
  expires_at: number | string;
  revoked_at: number | string | null;
}

export async function insertToken(tx: Knex.Transaction, token: Omit<TokenRecord, 'revokedAt'>): Promise<void> {
  await tx('tokens').insert({
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

function tokensWithHandles(db: Knex, tokenHashes: string[]): Promise<TokenWithHandleRow[]> {
  return db('tokens as t')
    .join('users as u', 'u.id', 't.user_id')
    .select('t.token_hash', 't.user_id', 't.created_at', 't.expires_at', 't.revoked_at', 'u.handle')
    .whereIn('t.token_hash', tokenHashes);
}

function toRecord(row: TokenWithHandleRow): TokenWithHandle {
  return {
    tokenHash: row.token_hash,
    userId: row.user_id,
    handle: row.handle,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

const MAX_HASHES_PER_QUERY = 500;

/**
 * Token lookups of requests that arrive together, answered by one query at
 * the end of the event loop's turn instead of one each (the statement, not
 * the row, is what a lookup costs). Each request still sees the token as
 * the database has it when its query runs: nothing is cached.
 */
export class TokenLookups {
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

/** Revoking twice keeps the first revocation time. */
export async function revokeToken(db: Knex, tokenHash: string, now: number): Promise<void> {
  await db('tokens').where({ token_hash: tokenHash }).whereNull('revoked_at').update({ revoked_at: now });
}
