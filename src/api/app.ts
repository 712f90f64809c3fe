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
import { httpTracing } from './middleware/tracing';
import { NotificationHub } from './notificationHub';
import { takesBody } from './openapi';
import { analyticsRoutes } from './routes/analytics';
import { asyncApiRoutes } from './routes/asyncapi';
import { healthRoutes } from './routes/health';
import { metricsRoutes } from './routes/metrics';
import { notificationRoutes } from './routes/notifications';
import { openApiRoutes } from './routes/openapi';
import { notificationStreamRoutes } from './routes/stream';
import { timelineRoutes } from './routes/timeline';
import { refuseWithoutDatabaseFile } from './unitOfWork';
import { tweetRoutes } from './routes/tweets';
import { userRoutes } from './routes/users';

export type { AppDeps, ReadinessCheck } from './context';

/** Builds the HTTP API from middleware and routers; nothing else happens here. */
export function createApp(deps: AppDeps): Koa<ApiState> {
  const api: ApiDeps = {
    ...deps,
    now: deps.now ?? (() => new Date()),
    writes: deps.writes ?? new GroupCommit(deps.writeDb ?? deps.db, { refuseWhen: refuseWithoutDatabaseFile(deps.writeDb ?? deps.db) }),
    metrics: deps.metrics ?? defaultMetrics(),
    liveNotifications: deps.liveNotifications ?? new NotificationHub(),
  };
  const router = new Router<ApiState>();
  const resources = [
    healthRoutes,
    metricsRoutes,
    userRoutes,
    tweetRoutes,
    timelineRoutes,
    notificationRoutes,
    notificationStreamRoutes,
    analyticsRoutes,
    openApiRoutes,
    asyncApiRoutes,
  ];
  for (const routes of resources) {
    router.use(routes(api).routes());
  }

  const app = new Koa<ApiState>();
  // What fails after the response started (mapErrors cannot answer it any more) is logged here, not
  // printed by Koa; a client that leaves a stream is the normal end of one, not an error.
  app.on('error', (err: Error & { code?: string }, ctx?: { state?: ApiState }) => {
    if (err.code === 'ERR_STREAM_PREMATURE_CLOSE') return;
    deps.log.warn({ requestId: ctx?.state?.requestId, err }, 'response failed after it started');
  });
  app.use(requestId());
  // Only when tracing is on: with it off, a request starts no span and touches no context.
  if (deps.tracing) app.use(httpTracing(deps.tracing, router));
  app.use(httpMetrics(api.metrics.http, router));
  app.use(accessLog(deps.log));
  app.use(mapErrors(deps.log));
  app.use(jsonBody(deps.config.http.bodyLimitBytes, takesBody));
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

function defaultMetrics(): ApiDeps['metrics'] {
  const registry = createRegistry('api');
  return { registry, http: new HttpMetrics(registry) };
}
