import { Router } from '@koa/router';
import { listNotifications } from '../../db/repositories/readModels';
import type { ApiDeps, ApiState } from '../context';
import { requireAuth, requireSelf } from '../middleware/auth';
import { requireUuidParams } from '../middleware/pathIds';
import { decodeCursor, listQuery, parseRequest, toPage } from '../validation';

/** A user's notifications, from the notifications service's read model, newest first. */
export function notificationRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();

  router.get('/users/:id/notifications', requireAuth(deps), requireUuidParams({ id: 'user' }), requireSelf, async (ctx) => {
    const query = parseRequest(listQuery, ctx.query, 'query');
    const beforeId = decodeCursor(query.before);
    ctx.body = toPage(await listNotifications(deps.db, ctx.params.id!, { limit: query.limit, beforeId }), query.limit);
  });

  return router;
}
