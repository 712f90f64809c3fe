import type { BenchContext } from '../lib/context';
import { packageVersion } from '../lib/machine';
import type { Row, ScenarioResult } from '../lib/report';
import { fmt, pct } from '../lib/stats';
import { baselineBuild } from '../lib/system';
import { fillWorkQueue, timeAnalyticsWorker, WORK_QUEUE, type ConsumeFigures } from '../lib/workers';

/**
 * 3. Consume: `warren worker analytics` on a pre-filled queue, on every
 * database driver, against raw amqplib ack-only consuming at the same
 * prefetch and against a BullMQ worker doing the same analytics update per job.
 */
export async function consume(ctx: BenchContext): Promise<ScenarioResult> {
  const n = ctx.sizes.messages;
  await fillWorkQueue(ctx, n);
  const raw = await ctx.sys.runTool<{ acked: number; rate: number; seconds: number }>('rawConsume', {
    amqpUrl: ctx.sys.amqpUrl,
    queue: WORK_QUEUE,
    prefetch: ctx.prefetch,
    count: n,
    timeoutSec: 120,
  });

  // The previous build's default driver first, when there is one.
  const baseline = baselineBuild();
  const before = baseline ? await timeAnalyticsWorker(ctx, await ctx.sys.sqliteStore('consume-baseline'), 1, {}, baseline.cli) : undefined;
  const runs: { driver: string; figures?: ConsumeFigures; why?: string }[] = [];
  // The default (`auto`: node-sqlite3 for workers), then better-sqlite3 (`database.sqliteDriver: better-sqlite3`).
  const sqlite = await ctx.sys.sqliteStore('consume-default');
  runs.push({ driver: 'SQLite, knex sqlite3 (default)', figures: await timeAnalyticsWorker(ctx, sqlite, 1) });
  const better = await ctx.sys.sqliteStore('consume-better-sqlite3', { WARREN_DATABASE_SQLITE_DRIVER: 'better-sqlite3' });
  runs.push({ driver: 'SQLite, knex better-sqlite3', figures: await timeAnalyticsWorker(ctx, better, 1) });
  const pg = await ctx.sys.postgresStore('consume-pg');
  runs.push({ driver: 'PostgreSQL', figures: await timeAnalyticsWorker(ctx, pg, 1) });
  ctx.shared.consumeRate = { sqlite: runs[0]!.figures!.rate, postgres: runs[runs.length - 1]!.figures!.rate };

  const bullDir = await ctx.sys.sqliteStore('bullmq');
  const bull = await ctx.sys.runTool<{ done: number; failed: number; rate: number; seconds: number }>('bullmqConsume', {
    redis: { host: '127.0.0.1', port: 6379 },
    queueName: `${ctx.sys.vhost}-analytics`,
    count: n,
    concurrency: 50,
    databaseDir: bullDir.dir,
    timeoutSec: Math.max(120, n / 100),
  });

  const measured = runs.filter((r) => r.figures);
  const fastest = measured.reduce((a, b) => (b.figures!.rate > a.figures!.rate ? b : a));
  const rows: Row[] = [];
  for (const r of runs) {
    if (!r.figures) {
      rows.push({ measure: `analytics msg/s, ${r.driver}`, warren: 'not measured', reference: r.why });
      continue;
    }
    const isDefault = r === runs[0];
    const ratio = r.figures.rate / raw.rate;
    rows.push({
      measure: `analytics msg/s, ${r.driver}, prefetch ${ctx.prefetch}`,
      warren: fmt(r.figures.rate),
      reference: `${fmt(raw.rate)} raw ack-only${isDefault && before ? `; previous build ${fmt(before.rate)} (${pct(before.rate / raw.rate)})` : ''}`,
      ratio: pct(ratio),
      target: isDefault ? '≥ 50 % (default driver)' : undefined,
      met: isDefault ? ratio >= 0.5 : undefined,
    });
  }
  const vsBull = fastest.figures!.rate / bull.rate;
  rows.push({
    measure: `fastest (${fastest.driver}) vs BullMQ`,
    warren: fmt(fastest.figures!.rate),
    reference: `${fmt(bull.rate)} BullMQ + same SQLite work`,
    ratio: `${fmt(vsBull, 2)}×`,
    target: '≥ 3×',
    met: vsBull >= 3,
  });

  return {
    id: 'consume',
    title: '3. Consume',
    rows,
    notes: [
      `Queue \`${WORK_QUEUE}\` pre-filled with ${fmt(n)} tweet.created messages (published as the relay publishes them) before each run; one \`warren worker analytics\` process, default configuration (prefetch ${ctx.prefetch}), a fresh migrated database per run.`,
      'Timed from the first inbox record to the last (`processed_messages.processed_at`, written in the same transaction as the analytics upserts), so process start-up is not counted.',
      ...runs.map((r) =>
        r.figures
          ? `- ${r.driver}: ${fmt(r.figures.count)} messages in ${fmt(r.figures.seconds, 1)} s = **${fmt(r.figures.rate)} msg/s**; parked ${r.figures.parked}${r.figures.complete ? '' : ' (INCOMPLETE within the bound)'}`
          : `- ${r.driver}: ${r.why}`,
      ),
      ...(before && baseline
        ? [
            `- Previous build (${baseline.label}), default driver, the same run first: ${fmt(before.count)} messages in ${fmt(before.seconds, 1)} s = **${fmt(before.rate)} msg/s**; parked ${before.parked}`,
          ]
        : []),
      `- Raw amqplib, prefetch ${ctx.prefetch}, \`ack\` of each delivery and nothing else: ${fmt(raw.acked)} in ${fmt(raw.seconds, 2)} s = **${fmt(raw.rate)} msg/s**.`,
      `- BullMQ ${packageVersion('bullmq')} on Redis, concurrency 50, each job one knex sqlite3 transaction with the same inbox record and analytics upserts as Warren's handler, on the same schema: ${fmt(bull.done)} jobs (${bull.failed} failed) in ${fmt(bull.seconds, 1)} s = **${fmt(bull.rate)} jobs/s** (timed from the first job started to the last completed; adding the jobs is not counted).`,
    ],
  };
}
