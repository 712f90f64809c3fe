import { Router } from '@koa/router';
import { NotFoundError } from '../../domain/errors';
import { listTimeline } from '../../db/repositories/tweets';
import { userExists } from '../../db/repositories/users';
import type { ApiDeps, ApiState } from '../context';
import { requireUuidParams } from '../middleware/pathIds';
import { decodeCursor, listQuery, parseRequest, toPage } from '../validation';

/** A user's own tweets and their followees', newest first, paged by cursor. */
export function timelineRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();

  router.get('/users/:id/timeline', requireUuidParams({ id: 'user' }), async (ctx) => {
    const query = parseRequest(listQuery, ctx.query, 'query');
    const beforeId = decodeCursor(query.before);
    const userId = ctx.params.id!;
    if (!(await userExists(deps.db, userId))) throw new NotFoundError('user');
    ctx.body = toPage(await listTimeline(deps.db, userId, { limit: query.limit, beforeId }), query.limit);
  });

  return router;
}
