/** @file `GET /api/v1/openapi.json`: the console API's document, generated once from the schemas that validate. */
import fs from 'node:fs';
import path from 'node:path';
import { Router } from '@koa/router';
import { projectRoot } from '../../config';
import type { ConsoleState } from '../context';
import { buildConsoleOpenApiDocument } from '../openapi';

function packageVersion(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
}

export function openApiRoutes(): Router<ConsoleState> {
  const router = new Router<ConsoleState>({ prefix: '/api/v1' });
  let document: string | undefined;
  router.get('/openapi.json', (ctx) => {
    document ??= JSON.stringify(buildConsoleOpenApiDocument(packageVersion()));
    ctx.type = 'application/json';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = document;
  });
  return router;
}
