/** @file The audit log, newest first, in pages. */
import { Router } from '@koa/router';
import { z } from 'zod';
import { ValidationError } from '../../domain/errors';
import { decodeCursor, encodeCursor, parseRequest } from '../../api/validation';
import { listAudit } from '../audit';
import type { ConsoleAppDeps, ConsoleState } from '../context';
import { pageLimit } from '../parkedQuery';

export const auditQuery = z.strictObject({
  limit: pageLimit,
  before: z.string().max(200).optional().meta({ description: 'the nextCursor of the previous page' }),
  action: z.string().min(1).max(50).optional(),
  actor: z.string().min(1).max(100).optional(),
});

export function auditRoutes(deps: ConsoleAppDeps): Router<ConsoleState> {
  const router = new Router<ConsoleState>({ prefix: '/api/v1/audit' });

  router.get('/', async (ctx) => {
    const query = parseRequest(auditQuery, ctx.query, 'query');
    const before = decodeCursor(query.before);
    if (query.before !== undefined && before === undefined)
      throw new ValidationError('invalid query: before is not a cursor this console gave', [{ path: 'before', message: 'not a cursor' }]);
    const rows = await listAudit(deps.db, { limit: query.limit + 1, before, action: query.action, actor: query.actor });
    const items = rows.slice(0, query.limit);
    ctx.body = { items, nextCursor: rows.length > query.limit ? encodeCursor(items[items.length - 1]!.id) : null };
  });

  return router;
}
