import { Router } from '@koa/router';
import type { ApiDeps, ApiState } from '../context';

/** Prometheus scrapes this process's own registry (each API process serves its own figures). */
export function metricsRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();
  router.get('/metrics', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.type = deps.metrics.registry.contentType;
    ctx.body = await deps.metrics.registry.metrics();
  });
  return router;
}
