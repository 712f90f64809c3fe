import { Router } from '@koa/router';
import { ConflictError, NotFoundError } from '../../domain/errors';
import { countActiveTokensLocked, listActiveTokens, revokeToken, revokeTokenById, revokeUserTokens } from '../../db/repositories/tokens';
import type { ApiDeps, ApiState } from '../context';
import { authUserId, issueToken, requireAuth, requireSelf } from '../middleware/auth';
import { requireUuidParams } from '../middleware/pathIds';
import { commitWrite } from '../unitOfWork';

/**
 * A user's API tokens: issue one (up to auth.maxTokens active), list them
 * (never the secret nor its hash), revoke one, the one presented, or all.
 * Revoking everything is how a user shuts out a token that was stolen: the
 * thief's token can no longer mint others that outlive it.
 */
export function tokenRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();
  const auth = requireAuth(deps);
  const userId = requireUuidParams({ id: 'user' });

  router.post('/users/:id/tokens', auth, userId, requireSelf, async (ctx) => {
    const id = authUserId(ctx);
    const max = deps.config.auth.maxTokens;
    await commitWrite(ctx, deps, async (tx, _emit, now) => {
      if ((await countActiveTokensLocked(tx, id, now.getTime())) >= max) {
        throw new ConflictError(`a user may hold at most ${max} active tokens (auth.maxTokens); revoke one first`, 'too_many_tokens');
      }
      const issued = await issueToken(tx, id, now, deps.config.auth.tokenTtlDays);
      return { status: 201, body: issued };
    });
  });

  router.get('/users/:id/tokens', auth, userId, requireSelf, async (ctx) => {
    const presented = ctx.state.auth!.tokenId;
    const tokens = await listActiveTokens(deps.db, authUserId(ctx), deps.now().getTime());
    ctx.body = {
      items: tokens.map((t) => ({
        id: t.id,
        createdAt: new Date(t.createdAt).toISOString(),
        expiresAt: new Date(t.expiresAt).toISOString(),
        lastUsed: t.lastUsedDay,
        current: t.id === presented,
      })),
      nextCursor: null,
    };
  });

  // Before /:tokenId, which would otherwise take `current` for a token id.
  router.delete('/users/:id/tokens/current', auth, userId, requireSelf, async (ctx) => {
    await deps.writes.run((tx) => revokeToken(tx, ctx.state.auth!.tokenHash, deps.now().getTime()));
    ctx.status = 204;
  });

  router.delete('/users/:id/tokens/:tokenId', auth, requireUuidParams({ id: 'user', tokenId: 'token' }), requireSelf, async (ctx) => {
    const found = await deps.writes.run((tx) => revokeTokenById(tx, authUserId(ctx), ctx.params.tokenId!, deps.now().getTime()));
    if (!found) throw new NotFoundError('token');
    ctx.status = 204;
  });

  router.delete('/users/:id/tokens', auth, userId, requireSelf, async (ctx) => {
    await deps.writes.run((tx) => revokeUserTokens(tx, authUserId(ctx), deps.now().getTime()));
    ctx.status = 204;
  });

  return router;
}
