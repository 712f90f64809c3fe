import Koa from 'koa';
import { Router, type RouterContext, type RouterMiddleware } from '@koa/router';
import type { Knex } from 'knex';
import type { Config } from '../config';
import type { Logger } from '../log';
import { accessLog } from './middleware/accessLog';
import { mapErrors } from './middleware/errors';
import { jsonBody } from './middleware/jsonBody';
import { requestId } from './middleware/requestId';
import { analyticsRoutes } from './routes/analytics';
import { healthRoutes } from './routes/health';
import { notificationRoutes } from './routes/notifications';
import { timelineRoutes } from './routes/timeline';
import { tweetRoutes } from './routes/tweets';
import { userRoutes } from './routes/users';

export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail?: string;
}

export interface AppDeps {
  config: Config;
  /** The api database, opened with attachReadModels. */
  db: Knex;
  log: Logger;
  /** Called after a commit that wrote outbox events (wakes the relay). */
  onEventsWritten(): void;
  /** Last known count of unsent outbox rows (kept by the relay). */
  outboxBacklog(): number;
  /** Broker/consumer checks from the process wiring; the app adds its own database check. */
  readiness(): Promise<ReadinessCheck[]>;
  /** For tests. */
  now?: () => Date;
}

/** What the middleware learns about a request and hands down the chain. */
export interface ApiState {
  requestId: string;
  /** The trace of an incoming `traceparent`, continued by the events this request emits. */
  traceId?: string;
  /** Set by requireAuth. */
  auth?: { userId: string; tokenHash: string };
  /** The request body as received (for the Idempotency-Key request hash) and parsed. */
  rawBody?: string;
  body?: unknown;
  /** Set by the Idempotency-Key middleware; the write stores its response in the same transaction. */
  idempotency?: { caller: string; key: string; requestHash: string; notBefore: number };
}

export type ApiContext = RouterContext<ApiState>;
export type ApiMiddleware = RouterMiddleware<ApiState>;

/** AppDeps with the clock settled, as routes and middleware receive them. */
export type ApiDeps = AppDeps & { now(): Date };

/** Builds the HTTP API from middleware and routers; nothing else happens here. */
export function createApp(deps: AppDeps): Koa<ApiState> {
  const api: ApiDeps = { ...deps, now: deps.now ?? (() => new Date()) };
  const app = new Koa<ApiState>();
  app.use(requestId());
  app.use(accessLog(deps.log));
  app.use(mapErrors(deps.log));
  app.use(jsonBody(deps.config.http.bodyLimitBytes));

  const router = new Router<ApiState>();
  for (const routes of [healthRoutes, userRoutes, tweetRoutes, timelineRoutes, notificationRoutes, analyticsRoutes]) {
    router.use(routes(api).routes());
  }
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}
