/** @file
 * Operator tokens of the console: 32 random bytes, base64url, prefixed
 * `wrc_` (an API token is `wrn_`, so neither is mistaken for the other),
 * kept only as their SHA-256 like the API's tokens. A token has a role:
 * `viewer` reads, `operator` also replays and discards.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { newId } from '../domain/ids';
import { OPERATOR_TOKENS_TABLE } from '../db/migrations/console';

export const OPERATOR_ROLES = ['viewer', 'operator'] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

const TOKEN_PREFIX = 'wrc_';
export const OPERATOR_TOKEN_PATTERN = /^wrc_[A-Za-z0-9_-]{43}$/;
/** A name says whose token it is in the audit log: letters, digits and `._@-`. */
export const OPERATOR_NAME_PATTERN = /^[A-Za-z0-9._@-]{1,100}$/;

export function isOperatorRole(value: string): value is OperatorRole {
  return (OPERATOR_ROLES as readonly string[]).includes(value);
}

export function hashOperatorToken(token: string): string {
  return crypto.createHash('sha256').update(token).digest('hex');
}

export interface Operator {
  id: string;
  name: string;
  role: OperatorRole;
}

export class OperatorTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OperatorTokenError';
  }
}

/** Issues a token; the secret is returned once and stored only as its hash. */
export async function createOperatorToken(db: Knex, role: OperatorRole, name: string | undefined, now: number): Promise<Operator & { token: string }> {
  const id = newId();
  const tokenName = name ?? `${role}-${id.slice(-12)}`;
  if (!OPERATOR_NAME_PATTERN.test(tokenName))
    throw new OperatorTokenError(`the name must be 1-100 characters of A-Z, a-z, 0-9 and ._@- (got ${JSON.stringify(tokenName)})`);
  const existing = (await db(OPERATOR_TOKENS_TABLE).where({ name: tokenName }).first('id')) as { id: string } | undefined;
  if (existing) throw new OperatorTokenError(`a token named ${tokenName} exists already (revoked or not): choose another name`);
  const token = TOKEN_PREFIX + crypto.randomBytes(32).toString('base64url');
  await db(OPERATOR_TOKENS_TABLE).insert({ id, name: tokenName, token_hash: hashOperatorToken(token), role, created_at: now });
  return { id, name: tokenName, role, token };
}

/** The operator a token stands for, or undefined when it is unknown or revoked. */
export async function findOperator(db: Knex, token: string): Promise<Operator | undefined> {
  if (!OPERATOR_TOKEN_PATTERN.test(token)) return undefined;
  const row = (await db(OPERATOR_TOKENS_TABLE)
    .where({ token_hash: hashOperatorToken(token) })
    .whereNull('revoked_at')
    .first('id', 'name', 'role')) as { id: string; name: string; role: string } | undefined;
  return row && isOperatorRole(row.role) ? { id: row.id, name: row.name, role: row.role } : undefined;
}

/** Revokes the token with this name or id; false when none is active under it. */
export async function revokeOperatorToken(db: Knex, nameOrId: string, now: number): Promise<boolean> {
  const changed = await db(OPERATOR_TOKENS_TABLE)
    .where((q) => void q.where({ name: nameOrId }).orWhere({ id: nameOrId }))
    .whereNull('revoked_at')
    .update({ revoked_at: now });
  return changed > 0;
}
