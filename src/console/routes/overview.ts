/** @file `GET /api/v1/overview`: the figures of the overview page, as JSON. */
import { Router } from '@koa/router';
import type { ConsoleAppDeps, ConsoleState } from '../context';
import type { OverviewCollector } from '../overview';

export function overviewRoutes(deps: ConsoleAppDeps, collector: () => OverviewCollector): Router<ConsoleState> {
  const router = new Router<ConsoleState>({ prefix: '/api/v1' });
  router.get('/overview', async (ctx) => {
    ctx.set('cache-control', 'no-store');
    ctx.body = await collector().collect(deps.now());
  });
  return router;
}
