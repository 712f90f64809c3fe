/** @file `GET /asyncapi.json`: the AsyncAPI document of Warren's messages, generated once from the schemas and the definitions file. */
import { Router } from '@koa/router';
import { buildInfo } from '../../build';
import { vhostOf } from '../../config';
import { loadDefinitions, retargetDefinitions } from '../../topology/definitions';
import { buildAsyncApiDocument } from '../asyncapi';
import type { ApiDeps, ApiState } from '../context';

export function asyncApiRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();
  let document: string | undefined;
  router.get('/asyncapi.json', (ctx) => {
    // The definitions as this deployment applies them: in the vhost of amqp.url.
    const defs = () => retargetDefinitions(loadDefinitions(deps.config.amqp.definitionsFile), vhostOf(deps.config.amqp.url));
    document ??= JSON.stringify(buildAsyncApiDocument(defs(), buildInfo().version));
    ctx.type = 'application/json';
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = document;
  });
  return router;
}
