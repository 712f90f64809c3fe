import fs from 'node:fs';
import path from 'node:path';
import { Router } from '@koa/router';
import { projectRoot } from '../../config';
import type { ApiDeps, ApiState } from '../context';
import { buildOpenApiDocument } from '../openapi';

function packageVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
}

/** `GET /openapi.json`: the document, generated once from the schemas that validate. */
export function openApiRoutes(_deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();
  let document: string | undefined;
  router.get('/openapi.json', (ctx) => {
    document ??= JSON.stringify(buildOpenApiDocument(packageVersion()));
    ctx.type = 'application/json';
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = document;
  });
  return router;
}
