import type { Router } from '@koa/router';
import type { Middleware } from 'koa';
import type { HttpMetrics } from '../../observability/metrics';
import { secondsSince } from '../../observability/metrics';
import type { ApiState } from '../context';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * The route a request is counted under: the router's pattern
 * (`/users/:id`), never the path itself, whose ids would make one series
 * per user. Asked of the router rather than read from what it left on the
 * context, so that requests refused before routing (415, 413) still count
 * under their route; a path no route knows is `unmatched`.
 */
export function routePattern(router: Router<ApiState>, path: string, method: string): string {
  const match = router.match(path, method);
  const byMethod = match.pathAndMethod.filter((l) => l.methods.length > 0);
  const byPath = match.path.filter((l) => l.methods.length > 0);
  const layer = byMethod.at(-1) ?? byPath.at(-1);
  return layer && typeof layer.path === 'string' ? layer.path : 'unmatched';
}

/** Request duration by method, route pattern and status, after the error mapping has settled the status. */
export function httpMetrics(metrics: HttpMetrics, router: Router<ApiState>): Middleware<ApiState> {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    let failed = false;
    try {
      await next();
    } catch (err) {
      failed = true;
      throw err;
    } finally {
      const method = KNOWN_METHODS.has(ctx.method) ? ctx.method : 'OTHER';
      metrics.observe(method, routePattern(router, ctx.path, ctx.method), failed ? 500 : ctx.status, secondsSince(started));
    }
  };
}
