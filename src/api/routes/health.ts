import { Router } from '@koa/router';
import type { GroupCommit } from '../../db/groupCommit';
import { pingDatabase } from '../../db/knex';
import { OUTBOX_TABLE } from '../../outbox/store';
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

/** A check as /readyz reports it: whether it decides readiness or is only reported. */
export type ReportedCheck = ReadinessCheck & { required: boolean };

async function databaseCheck(deps: ApiDeps): Promise<ReadinessCheck> {
  try {
    await withTimeout(pingDatabase(deps.db), 'the database');
    return { name: 'database', ok: true };
  } catch (err) {
    return { name: 'database', ok: false, detail: (err as Error).message };
  }
}

/**
 * A write that takes the writer's lock and changes nothing: after a failed
 * transaction, only a commit that goes through shows the writer can commit
 * again, and a process out of the load balancer gets no request that would.
 */
const probes = new WeakMap<GroupCommit, Promise<unknown>>();
function probeWriter(writes: GroupCommit): Promise<unknown> {
  let probe = probes.get(writes);
  if (!probe) {
    probe = writes
      .run(
        (tx) =>
          tx(OUTBOX_TABLE)
            .where('seq', '<', 0)
            .update({ attempts: tx.raw('attempts') }),
        { rerunnable: true },
      )
      .finally(() => probes.delete(writes));
    probes.set(writes, probe);
  }
  return probe;
}

async function writerCheck(deps: ApiDeps): Promise<ReadinessCheck> {
  if (!deps.writes.health().ok) await withTimeout(probeWriter(deps.writes), 'the writer').catch(() => undefined);
  const h = deps.writes.health();
  if (h.ok) return { name: 'writer', ok: true, detail: h.lastCommitAt === null ? 'no commit yet' : `last commit ${new Date(h.lastCommitAt).toISOString()}` };
  const since = h.lastCommitAt === null ? 'none committed since start' : `last commit ${new Date(h.lastCommitAt).toISOString()}`;
  const why =
    h.stalledForMs !== undefined
      ? `a transaction has been under way for ${h.stalledForMs} ms`
      : `${h.failedInARow} transaction(s) failed in a row (${h.lastFailure ?? 'unknown'})`;
  return { name: 'writer', ok: false, detail: `cannot commit: ${why}; ${since}` };
}

function outboxCheck(deps: ApiDeps): ReadinessCheck {
  const backlog = deps.outboxBacklog();
  const max = deps.config.outbox.maxBacklog;
  return backlog > max
    ? { name: 'outbox', ok: false, detail: `backlog ${backlog} over outbox.maxBacklog ${max}: writes answer 503` }
    : { name: 'outbox', ok: true, detail: `backlog ${backlog} (outbox.maxBacklog ${max})` };
}

async function reportedChecks(deps: ApiDeps): Promise<ReadinessCheck[]> {
  try {
    return await withTimeout(deps.readiness(), 'the readiness checks');
  } catch (err) {
    return [{ name: 'readiness', ok: false, detail: (err as Error).message }];
  }
}

/**
 * The API is ready while it can take writes: the database answers, its
 * writer commits, the outbox is under outbox.maxBacklog, and it is not
 * draining for a stop. The broker, the topology, the relay, the live
 * subscription and the consumers are reported without deciding it: the
 * outbox absorbs a broker outage, and taking every API out of the load
 * balancer then would refuse the writes it exists to keep taking.
 */
export async function readinessOf(deps: ApiDeps): Promise<{ ready: boolean; status: 'ok' | 'degraded' | 'unavailable'; checks: ReportedCheck[] }> {
  const [database, writer, reported] = await Promise.all([databaseCheck(deps), writerCheck(deps), reportedChecks(deps)]);
  const required: ReadinessCheck[] = [database, writer, outboxCheck(deps)];
  if (deps.draining?.()) required.push({ name: 'shutdown', ok: false, detail: 'draining: this process stops taking connections shortly' });
  const checks = [...required.map((c) => ({ ...c, required: true })), ...reported.map((c) => ({ ...c, required: false }))];
  const ready = required.every((c) => c.ok);
  return { ready, status: !ready ? 'unavailable' : checks.every((c) => c.ok) ? 'ok' : 'degraded', checks };
}

/** Liveness says the process answers; readiness says it can take writes (and reports the rest). */
export function healthRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async (ctx) => {
    const { ready, status, checks } = await readinessOf(deps);
    ctx.set('Cache-Control', 'no-store');
    ctx.status = ready ? 200 : 503;
    ctx.body = { status, checks };
  });

  return router;
}
