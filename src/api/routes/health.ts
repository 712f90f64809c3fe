import { Router } from '@koa/router';
import { pingDatabase } from '../../db/knex';
import type { ApiDeps, ApiState, ReadinessCheck } from '../context';

// A probe must answer even when what it probes hangs.
const CHECK_TIMEOUT_MS = 2000;

async function withTimeout<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function databaseCheck(deps: ApiDeps): Promise<ReadinessCheck> {
  try {
    await withTimeout(pingDatabase(deps.db), 'the database');
    return { name: 'database', ok: true };
  } catch (err) {
    return { name: 'database', ok: false, detail: (err as Error).message };
  }
}

async function processChecks(deps: ApiDeps): Promise<ReadinessCheck[]> {
  try {
    return await withTimeout(deps.readiness(), 'the readiness checks');
  } catch (err) {
    return [{ name: 'readiness', ok: false, detail: (err as Error).message }];
  }
}

/** Liveness says the process answers; readiness says it can do its work (database, broker, consumers). */
export function healthRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async (ctx) => {
    const checks = [await databaseCheck(deps), ...(await processChecks(deps))];
    const ready = checks.every((c) => c.ok);
    ctx.set('Cache-Control', 'no-store');
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ok' : 'unavailable', checks };
  });

  return router;
}
