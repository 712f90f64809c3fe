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

/** A token with its user's current handle (one lookup serves auth and the author of a tweet). */
export async function findToken(db: Knex, tokenHash: string): Promise<(TokenRecord & { handle: string }) | undefined> {
  const row = (await db('tokens as t')
    .join('users as u', 'u.id', 't.user_id')
    .select('t.token_hash', 't.user_id', 't.created_at', 't.expires_at', 't.revoked_at', 'u.handle')
    .where('t.token_hash', tokenHash)
    .first()) as (TokenRow & { handle: string }) | undefined;
  if (!row) return undefined;
  return {
    tokenHash: row.token_hash,
    userId: row.user_id,
    handle: row.handle,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

/** Revoking twice keeps the first revocation time. */
export async function revokeToken(db: Knex, tokenHash: string, now: number): Promise<void> {
  await db('tokens').where({ token_hash: tokenHash }).whereNull('revoked_at').update({ revoked_at: now });
}
