import { Router } from '@koa/router';
import { NotFoundError, ValidationError } from '../../domain/errors';
import { deleteFollow, insertFollow } from '../../db/repositories/follows';
import { findUserById } from '../../db/repositories/users';
import type { ApiDeps, ApiState } from '../context';
import { requireAuth, requireSelf } from '../middleware/auth';
import { requireUuidParams } from '../middleware/pathIds';
import { guardOutboxBacklog } from '../middleware/outboxBacklog';
import { commitWrite } from '../unitOfWork';

/** Who a user follows; a new follow is announced once with `user.followed`, an ended one once with `user.unfollowed`. */
export function followRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();
  const guards = [requireAuth(deps), requireUuidParams({ id: 'user', targetId: 'user' }), requireSelf] as const;

  router.put('/users/:id/following/:targetId', ...guards, guardOutboxBacklog(deps), async (ctx) => {
    const followerId = ctx.params.id!;
    const followeeId = ctx.params.targetId!;
    if (followerId === followeeId) {
      throw new ValidationError('a user cannot follow themselves', [{ path: 'targetId', message: 'must not be the user themselves' }]);
    }
    await commitWrite(ctx, deps, async (tx, emit, now) => {
      const [follower, followee] = [await findUserById(tx, followerId), await findUserById(tx, followeeId)];
      if (!followee || !follower) throw new NotFoundError('user');
      const at = now.toISOString();
      // Following again changes nothing and announces nothing.
      if (await insertFollow(tx, followerId, followeeId, at)) {
        emit('user.followed', { followerId, followeeId, at, followerHandle: follower.handle });
      }
      return { status: 204 };
    });
  });

  router.delete('/users/:id/following/:targetId', ...guards, guardOutboxBacklog(deps), async (ctx) => {
    const followerId = ctx.params.id!;
    const followeeId = ctx.params.targetId!;
    await commitWrite(ctx, deps, async (tx, emit, now) => {
      // Unfollowing someone not followed changes nothing and announces nothing.
      if (await deleteFollow(tx, followerId, followeeId)) emit('user.unfollowed', { followerId, followeeId, at: now.toISOString() });
      return { status: 204 };
    });
  });

  return router;
}
