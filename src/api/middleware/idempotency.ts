import crypto from 'node:crypto';
import type { Middleware } from 'koa';
import { ConflictError, ValidationError } from '../../domain/errors';
import { findIdempotencyRecord, pruneIdempotencyRecords, type IdempotencyRecord } from '../../db/repositories/idempotency';
import { isUniqueViolation } from '../../db/repositories/errors';
import type { ApiDeps, ApiState } from '../context';

const HEADER = 'Idempotency-Key';
export const MAX_KEY_LENGTH = 64;
const PRUNE_EVERY_MS = 10 * 60_000;

function requestHash(method: string, path: string, rawBody: string): string {
  return crypto.createHash('sha256').update(`${method} ${path}\n${rawBody}`).digest('hex');
}

/**
 * `Idempotency-Key` on a create: a repeat with the same body gets the first
 * response (status and body) and does nothing; the same key with another
 * body is 409 `idempotency_key_reused`. Keys are per caller (`callerOf`) and
 * live `idempotency.ttlHours`. The record is written by commitWrite in the
 * same transaction as the effect, so of two concurrent twins one commits and
 * the other fails on a unique constraint, rolls back, and is answered here
 * with the winner's response.
 */
export function idempotencyKey(deps: ApiDeps, callerOf: (ctx: { state: ApiState; ip: string }) => string): Middleware<ApiState> {
  let lastPrunedAt = 0;
  return async (ctx, next) => {
    const key = ctx.headers['idempotency-key'];
    if (key === undefined) return next();
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
      throw new ValidationError(`${HEADER} must be 1-${MAX_KEY_LENGTH} characters`, [{ path: HEADER, message: `must be 1-${MAX_KEY_LENGTH} characters` }]);
    }
    const now = deps.now().getTime();
    const notBefore = now - deps.config.idempotency.ttlHours * 3_600_000;
    const caller = callerOf(ctx);
    const hash = requestHash(ctx.method, ctx.path, ctx.state.rawBody ?? '');

    const replay = (record: IdempotencyRecord) => {
      if (record.requestHash !== hash) {
        throw new ConflictError(`${HEADER} was already used with a different request`, 'idempotency_key_reused');
      }
      ctx.status = record.status;
      ctx.body = JSON.parse(record.response) as unknown;
      ctx.set('Idempotent-Replayed', 'true');
    };

    const stored = await findIdempotencyRecord(deps.db, caller, key, notBefore);
    if (stored) return replay(stored);

    ctx.state.idempotency = { caller, key, requestHash: hash, notBefore };
    try {
      await next();
    } catch (err) {
      // A concurrent twin may have committed first; if so its response is the answer.
      if (!(err instanceof ConflictError || isUniqueViolation(err))) throw err;
      const winner = await findIdempotencyRecord(deps.db, caller, key, notBefore);
      if (!winner) throw err;
      return replay(winner);
    }

    if (now - lastPrunedAt > PRUNE_EVERY_MS) {
      lastPrunedAt = now;
      // Through the writer: deps.db is the read-only pool requests read from.
      await deps.writes.run((tx) => pruneIdempotencyRecords(tx, notBefore)).catch((err: unknown) => deps.log.warn({ err }, 'pruning idempotency keys failed'));
    }
  };
}
