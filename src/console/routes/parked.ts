/** @file The parked messages of every DLQ as the index has them: a page with search and filters, the count a filter selects, an export, one message in full. */
import { Router } from '@koa/router';
import { NotFoundError, ValidationError } from '../../domain/errors';
import { parseRequest } from '../../api/validation';
import { operatorOf, type ConsoleAppDeps, type ConsoleState } from '../context';
import { countSelected, findParked, searchParked } from '../parkedIndex';
import { exportFileName, exportSelected } from '../exportSelection';
import { summariseParked } from '../summary';
import { decodePageCursor, parkedFilter, parkedListQuery } from '../parkedQuery';

export function parkedRoutes(deps: ConsoleAppDeps): Router<ConsoleState> {
  const router = new Router<ConsoleState>({ prefix: '/api/v1/parked' });

  router.get('/', async (ctx) => {
    const query = parseRequest(parkedListQuery, ctx.query, 'query');
    const after = query.before === undefined ? undefined : decodePageCursor(query.before);
    if (query.before !== undefined && !after)
      throw new ValidationError('invalid query: before is not a cursor this console gave', [{ path: 'before', message: 'not a cursor' }]);
    ctx.body = await searchParked(deps.db, query, after);
  });

  router.get('/count', async (ctx) => {
    ctx.body = await countSelected(deps.db, parseRequest(parkedFilter, ctx.query, 'query'));
  });

  router.get('/summary', async (ctx) => {
    const groups = await summariseParked(deps.db);
    ctx.body = { items: groups.map((g) => ({ ...g, oldest: new Date(g.oldest).toISOString(), newest: new Date(g.newest).toISOString() })) };
  });

  // A read (a viewer may export), audited; offered as a file to save.
  router.get('/export', async (ctx) => {
    const filter = parseRequest(parkedFilter, ctx.query, 'query');
    const now = deps.now();
    ctx.body = await exportSelected(deps.db, operatorOf(ctx), filter, deps.config.console.maxPerAction, now);
    ctx.set('content-disposition', `attachment; filename="${exportFileName(now)}"`);
  });

  router.get('/:id', async (ctx) => {
    const found = await findParked(deps.db, ctx.params.id!);
    if (!found) throw new NotFoundError('parked message');
    ctx.body = found;
  });

  return router;
}
