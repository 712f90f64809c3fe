import { Router } from '@koa/router';
import { NotFoundError } from '../../domain/errors';
import { userExists } from '../../db/repositories/users';
import type { ApiDeps, ApiState } from '../context';
import { requireUuidParams } from '../middleware/pathIds';
import { decodeCursor, listQuery, parseRequest } from '../validation';

/**
 * A user's own tweets and their followees', newest first, paged by cursor:
 * asked of the timeline service (deps.timeline), which builds home
 * timelines from the events. When no instance of it answers within the
 * deadline, 503 with Retry-After; never an answer from the API's own tables.
 */
export function timelineRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();

  router.get('/users/:id/timeline', requireUuidParams({ id: 'user' }), async (ctx) => {
    const query = parseRequest(listQuery, ctx.query, 'query');
    // The service takes the same cursors; a bad one is the client's 400, never a call.
    decodeCursor(query.before);
    const userId = ctx.params.id!;
    if (!(await userExists(deps.db, userId))) throw new NotFoundError('user');
    ctx.body = await deps.timeline.page(userId, { limit: query.limit, ...(query.before === undefined ? {} : { before: query.before }) });
  });

  return router;
}
