/** @file
 * The console's HTTP app: the API's request id, access log, error mapping
 * and body limit around the console's own routes under `/api/v1/`, every
 * one behind an operator token. `/healthz` alone answers without one, and
 * says nothing but that the process runs.
 */
import Koa from 'koa';
import { Router } from '@koa/router';
import { accessLog } from '../api/middleware/accessLog';
import { mapErrors } from '../api/middleware/errors';
import { jsonBody } from '../api/middleware/jsonBody';
import { requestId } from '../api/middleware/requestId';
import { requireOperatorToken } from './auth';
import type { ConsoleAppDeps, ConsoleDeps, ConsoleState } from './context';
import { actionDepsOf, actionRoutes } from './routes/actions';
import { auditRoutes } from './routes/audit';
import { openApiRoutes } from './routes/openapi';
import { overviewRoutes } from './routes/overview';
import { OverviewCollector } from './overview';
import { pageRoutes } from './routes/pages';
import { parkedRoutes } from './routes/parked';

export type { ConsoleDeps } from './context';

export function createConsoleApp(deps: ConsoleDeps): Koa<ConsoleState> {
  const app: ConsoleAppDeps = { ...deps, now: deps.now ?? Date.now };
  const open = new Router<ConsoleState>();
  open.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  // Ready while the indexer consumes: without it, new parks wait in the index queue and the pages show an old picture.
  open.get('/readyz', (ctx) => {
    const status = deps.indexer?.status();
    ctx.status = status?.consuming ? 200 : 503;
    ctx.body = { status: status?.consuming ? 'ok' : 'unavailable', indexer: status?.detail ?? 'no indexer in this process' };
  });
  let collector: OverviewCollector | undefined;
  const overview = () => (collector ??= new OverviewCollector(deps.db, deps.config));
  const api = new Router<ConsoleState>();
  for (const router of [actionRoutes(app), parkedRoutes(app), auditRoutes(app), overviewRoutes(app, overview), openApiRoutes()]) {
    api.use(router.routes(), router.allowedMethods());
  }

  const koa = new Koa<ConsoleState>();
  koa.use(requestId());
  koa.use(accessLog(deps.log));
  koa.use(mapErrors(deps.log));
  koa.use(open.routes());
  const guarded = requireOperatorToken(deps.db);
  koa.use(async (ctx, next) => (ctx.path === '/api/v1' || ctx.path.startsWith('/api/v1/') ? guarded(ctx, next) : next()));
  koa.use(jsonBody(deps.config.http.bodyLimitBytes, (method, path) => method === 'POST' && path.startsWith('/api/v1/')));
  koa.use(api.routes());
  koa.use(api.allowedMethods());
  const pages = pageRoutes(app, () => actionDepsOf(app), overview);
  koa.use(pages.routes());
  koa.use(pages.allowedMethods());
  return koa;
}
