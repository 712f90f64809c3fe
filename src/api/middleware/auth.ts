import crypto from 'node:crypto';
import type { Knex } from 'knex';
import type { Middleware } from 'koa';
import { ForbiddenError, UnauthorizedError } from '../../domain/errors';
import type { GroupCommit } from '../../db/groupCommit';
import { insertToken, markTokenUsed, tokenFinder, type TokenFinder } from '../../db/repositories/tokens';
import { newId } from '../../domain/ids';
import type { ApiDeps, ApiMiddleware, ApiState } from '../context';

const TOKEN_PREFIX = 'wrn_';
// 32 random bytes are 43 base64url characters (no padding).
const TOKEN_PATTERN = /^wrn_[A-Za-z0-9_-]{43}$/;
const DAY_MS = 86_400_000;

/** A 256-bit random secret: SHA-256 is enough to store it (a slow hash would only cap throughput). */
export function hashToken(token: string): string {
  // The one-shot hash: no Hash object per request.
  return crypto.hash('sha256', token, 'hex');
}

/** Creates a token for `userId` inside `tx`; the plain token is returned once and never stored. */
export async function issueToken(tx: Knex.Transaction, userId: string, now: Date, ttlDays: number): Promise<{ id: string; token: string; expiresAt: string }> {
  const token = TOKEN_PREFIX + crypto.randomBytes(32).toString('base64url');
  const id = newId();
  const expiresAt = now.getTime() + Math.round(ttlDays * DAY_MS);
  await insertToken(tx, { id, tokenHash: hashToken(token), userId, createdAt: now.getTime(), expiresAt });
  return { id, token, expiresAt: new Date(expiresAt).toISOString() };
}

/** The UTC day of an instant, as a token's last use is kept. */
export function utcDay(at: Date): string {
  return at.toISOString().slice(0, 10);
}

/**
 * A token's last-used day, written at most once per token per day: the
 * lookup every request makes already reads the stored day, so a request only
 * writes when the day has changed, and not at all while such a write is on
 * its way. The write joins the group commit and the request does not wait
 * for it (a use is worth recording, not worth delaying or failing a request).
 */
class TokenUseDays {
  private readonly writing = new Set<string>();

  constructor(
    private readonly writes: GroupCommit,
    private readonly onError: (err: unknown) => void,
  ) {}

  record(tokenHash: string, storedDay: string | null, today: string): void {
    if (storedDay !== null && storedDay >= today) return;
    const key = `${tokenHash} ${today}`;
    if (this.writing.has(key)) return;
    this.writing.add(key);
    this.writes
      .run((tx) => markTokenUsed(tx, tokenHash, today), { rerunnable: true })
      .catch(this.onError)
      .finally(() => this.writing.delete(key));
  }
}

/** `Authorization: Bearer wrn_...`: 401 when missing, unknown or revoked; 401 `token_expired` past its expiry. */
export function requireAuth(deps: ApiDeps): Middleware<ApiState> {
  const tokens = lookupsOf(deps.db);
  const uses = useDaysOf(deps);
  return async (ctx, next) => {
    const match = /^Bearer +(\S+) *$/i.exec(ctx.get('authorization'));
    const token = match?.[1];
    if (!token || !TOKEN_PATTERN.test(token)) throw new UnauthorizedError();
    const tokenHash = hashToken(token);
    const record = await tokens.find(tokenHash);
    if (!record || record.revokedAt !== null) throw new UnauthorizedError();
    if (record.expiresAt <= deps.now().getTime()) {
      throw new UnauthorizedError('the token has expired; sign in again for a new one', 'token_expired');
    }
    uses.record(tokenHash, record.lastUsedDay, utcDay(deps.now()));
    ctx.state.auth = { userId: record.userId, tokenId: record.id, tokenHash, handle: record.handle };
    await next();
  };
}

// One lookup per database, shared by every route's requireAuth.
const lookups = new WeakMap<Knex, TokenFinder>();
function lookupsOf(db: Knex): TokenFinder {
  let found = lookups.get(db);
  if (!found) lookups.set(db, (found = tokenFinder(db)));
  return found;
}

// One per writer, shared by every route's requireAuth, so concurrent first uses of a day write once.
const useDays = new WeakMap<GroupCommit, TokenUseDays>();
function useDaysOf(deps: ApiDeps): TokenUseDays {
  let found = useDays.get(deps.writes);
  if (!found) {
    found = new TokenUseDays(deps.writes, (err) => deps.log.warn({ err }, "recording a token's last-used day failed"));
    useDays.set(deps.writes, found);
  }
  return found;
}

/** Only the user named by `:id` may act on it (after requireAuth). */
export const requireSelf: ApiMiddleware = async (ctx, next) => {
  if (!ctx.state.auth || ctx.state.auth.userId !== ctx.params.id) throw new ForbiddenError('this token belongs to another user');
  await next();
};

/** The authenticated user's id; routes behind requireAuth only. */
export function authUserId(ctx: { state: ApiState }): string {
  if (!ctx.state.auth) throw new UnauthorizedError();
  return ctx.state.auth.userId;
}
