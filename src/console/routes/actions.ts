/** @file Replay and discard of parked messages (operator tokens only: the access rule refuses a viewer before this). */
import { Router } from '@koa/router';
import { UnavailableError } from '../../domain/errors';
import { parseRequest } from '../../api/validation';
import { NotFoundError } from '../../domain/errors';
import { discardBody, replayBody, startDiscard, startReplay, type ActionDeps, type StartedAction } from '../actions';
import { findAction } from '../actionProgress';
import { operatorOf, type ConsoleAppDeps, type ConsoleContext, type ConsoleState } from '../context';

/** What an action needs, from the console's dependencies; 503 without a broker. */
export function actionDepsOf(deps: ConsoleAppDeps): ActionDeps {
  if (!deps.amqpUrl) throw new UnavailableError('this console has no broker to replay or discard with');
  return {
    db: deps.db,
    amqpUrl: deps.amqpUrl,
    maxPerAction: deps.config.console.maxPerAction,
    inboxRetentionDays: deps.config.inbox.retentionDays,
    publishTimeoutMs: deps.config.relay.publishTimeoutMs,
    now: deps.now,
    ...(deps.dlq ? { dlq: deps.dlq } : {}),
  };
}

/** The action's end as the answer, or (background) 202 at once with where its progress is; a background failure is logged, and its record says it. */
async function answer(ctx: ConsoleContext, deps: ConsoleAppDeps, background: boolean, action: StartedAction): Promise<void> {
  if (!background || action.started.dryRun) {
    ctx.body = await action.finished;
    return;
  }
  action.finished.catch((err: unknown) => deps.log.error({ err, actionId: action.started.actionId }, 'console action failed'));
  ctx.status = 202;
  ctx.set('location', `/api/v1/actions/${action.started.actionId}`);
  ctx.body = action.started;
}

export function actionRoutes(deps: ConsoleAppDeps): Router<ConsoleState> {
  const router = new Router<ConsoleState>({ prefix: '/api/v1' });
  const actionDeps = () => actionDepsOf(deps);

  router.post('/parked/replay', async (ctx) => {
    const body = parseRequest(replayBody, ctx.state.body ?? {});
    await answer(ctx, deps, body.background, await startReplay(actionDeps(), operatorOf(ctx), body));
  });

  router.post('/parked/discard', async (ctx) => {
    const body = parseRequest(discardBody, ctx.state.body ?? {});
    await answer(ctx, deps, body.background, await startDiscard(actionDeps(), operatorOf(ctx), body));
  });

  router.get('/actions/:id', async (ctx) => {
    const found = await findAction(deps.db, ctx.params.id!, deps.now());
    if (!found) throw new NotFoundError('action');
    ctx.body = found;
  });

  return router;
}
