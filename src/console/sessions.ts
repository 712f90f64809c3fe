/** @file
 * Sign-in sessions of the console's pages. Signing in with an operator
 * token gives a cookie (`warren_console_session`: HttpOnly, SameSite=Strict,
 * Path=/) holding a random secret, kept in the database only as its
 * SHA-256 and tied to the token, so revoking the token ends its sessions.
 * Every form carries a CSRF token derived from the session's secret: a page
 * of another site can make a browser send the cookie, never read the token.
 */
import crypto from 'node:crypto';
import type { Knex } from 'knex';
import { OPERATOR_TOKENS_TABLE, SESSIONS_TABLE } from '../db/migrations/console';
import { isOperatorRole, type Operator } from './operatorTokens';

export const SESSION_COOKIE = 'warren_console_session';
export const SESSION_TTL_MS = 12 * 3_600_000;
const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/;

const sha256 = (text: string) => crypto.createHash('sha256').update(text).digest('hex');

export async function startSession(db: Knex, operator: Operator, now: number): Promise<string> {
  const secret = crypto.randomBytes(32).toString('base64url');
  await db(SESSIONS_TABLE).insert({ id_hash: sha256(secret), token_id: operator.id, created_at: now, expires_at: now + SESSION_TTL_MS });
  return secret;
}

/** The operator of a live session whose token is not revoked. */
export async function findSession(db: Knex, secret: string | undefined, now: number): Promise<Operator | undefined> {
  if (!secret || !SECRET_PATTERN.test(secret)) return undefined;
  const row = (await db(`${SESSIONS_TABLE} as s`)
    .join(`${OPERATOR_TOKENS_TABLE} as t`, 't.id', 's.token_id')
    .where('s.id_hash', sha256(secret))
    .andWhere('s.expires_at', '>', now)
    .whereNull('t.revoked_at')
    .first('t.id', 't.name', 't.role')) as { id: string; name: string; role: string } | undefined;
  return row && isOperatorRole(row.role) ? { id: row.id, name: row.name, role: row.role } : undefined;
}

export async function endSession(db: Knex, secret: string): Promise<void> {
  await db(SESSIONS_TABLE)
    .where({ id_hash: sha256(secret) })
    .delete();
}

/** The CSRF token of a session: derived from its secret, so nothing more is stored. */
export function csrfTokenOf(secret: string): string {
  return crypto.createHmac('sha256', secret).update('warren-console-csrf').digest('base64url');
}

export function csrfMatches(secret: string, given: unknown): boolean {
  if (typeof given !== 'string') return false;
  const want = Buffer.from(csrfTokenOf(secret));
  const got = Buffer.from(given);
  return want.length === got.length && crypto.timingSafeEqual(want, got);
}
