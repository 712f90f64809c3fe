import Koa from 'koa';
import { Router } from '@koa/router';
import { GroupCommit } from '../db/groupCommit';
import { createRegistry, HttpMetrics } from '../observability/metrics';
import type { ApiDeps, ApiState, AppDeps } from './context';
import { accessLog } from './middleware/accessLog';
import { mapErrors } from './middleware/errors';
import { httpMetrics } from './middleware/httpMetrics';
import { jsonBody } from './middleware/jsonBody';
import { requestId } from './middleware/requestId';
import { analyticsRoutes } from './routes/analytics';
import { healthRoutes } from './routes/health';
import { metricsRoutes } from './routes/metrics';
import { notificationRoutes } from './routes/notifications';
import { timelineRoutes } from './routes/timeline';
import { tweetRoutes } from './routes/tweets';
import { userRoutes } from './routes/users';

export type { AppDeps, ReadinessCheck } from './context';

/** Builds the HTTP API from middleware and routers; nothing else happens here. */
export function createApp(deps: AppDeps): Koa<ApiState> {
  const api: ApiDeps = { ...deps, now: deps.now ?? (() => new Date()), writes: new GroupCommit(deps.writeDb ?? deps.db), metrics: deps.metrics ?? defaultMetrics() };
  const router = new Router<ApiState>();
  for (const routes of [healthRoutes, metricsRoutes, userRoutes, tweetRoutes, timelineRoutes, notificationRoutes, analyticsRoutes]) {
    router.use(routes(api).routes());
  }

  const app = new Koa<ApiState>();
  app.use(requestId());
  app.use(httpMetrics(api.metrics.http, router));
  app.use(accessLog(deps.log));
  app.use(mapErrors(deps.log));
  app.use(jsonBody(deps.config.http.bodyLimitBytes));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

function defaultMetrics(): ApiDeps['metrics'] {
  const registry = createRegistry('api');
  return { registry, http: new HttpMetrics(registry) };
}
