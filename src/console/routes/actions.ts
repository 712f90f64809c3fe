/** @file Replay and discard of parked messages (operator tokens only: the access rule refuses a viewer before this). */
import { Router } from '@koa/router';
import { UnavailableError } from '../../domain/errors';
import { parseRequest } from '../../api/validation';
import { discardBody, discardSelected, replayBody, replaySelected, type ActionDeps } from '../actions';
import { operatorOf, type ConsoleAppDeps, type ConsoleState } from '../context';

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

export function actionRoutes(deps: ConsoleAppDeps): Router<ConsoleState> {
  const router = new Router<ConsoleState>({ prefix: '/api/v1/parked' });
  const actionDeps = () => actionDepsOf(deps);

  router.post('/replay', async (ctx) => {
    const body = parseRequest(replayBody, ctx.state.body ?? {});
    ctx.body = await replaySelected(actionDeps(), operatorOf(ctx), body);
  });

  router.post('/discard', async (ctx) => {
    const body = parseRequest(discardBody, ctx.state.body ?? {});
    ctx.body = await discardSelected(actionDeps(), operatorOf(ctx), body);
  });

  return router;
}
