import type { BenchContext } from '../lib/context';
import { cpuSeconds } from '../lib/procCpu';
import { openReader, scalar } from '../lib/reader';
import type { Row, ScenarioResult } from '../lib/report';
import { fmt, pollUntil } from '../lib/stats';
import { WORK_QUEUE } from '../lib/workers';

interface Run {
  driver: string;
  cpuUsPerMessage: number;
  transactions: number;
  messages: number;
  publishedRate: number;
}

const ROUNDS = 3;
const us = (n: number) => `${fmt(n, 0)} µs`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const DRIVERS = [
  { id: 'better-sqlite3', label: 'better-sqlite3', env: { WARREN_DATABASE_SQLITE_DRIVER: 'better-sqlite3' } },
  { id: 'sqlite3', label: 'node-sqlite3 (default)', env: {} },
] as const;

/**
 * The analytics worker at a steady, moderate rate (as tweets arrive from
 * the relay under ingest, not a pre-filled queue): `warren worker
 * analytics` on a fresh SQLite directory while a raw publisher sends
 * `BENCH_STEADY_RATE` tweets/s (default 1,000) for the ingest duration, on
 * each SQLite driver in alternating rounds. Reported: the worker's CPU per
 * message (from /proc, whole process) and its transactions (the distinct
 * processed_at of its inbox records, one per transaction): how many
 * messages a batch gathers by itself while the one before it commits.
 */
export async function steady(ctx: BenchContext): Promise<ScenarioResult> {
  const rate = Number(process.env.BENCH_STEADY_RATE) > 0 ? Number(process.env.BENCH_STEADY_RATE) : 1000;
  const count = Math.round(rate * ctx.sizes.ingestSeconds);
  const runs: Run[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? DRIVERS : [...DRIVERS].reverse();
    for (const d of order) {
      ctx.log(`steady: round ${round + 1}, ${d.id}`);
      await ctx.sys.purge(WORK_QUEUE);
      const store = await ctx.sys.sqliteStore(`steady-${d.id}-${round}`, d.env);
      const worker = ctx.sys.warren(['worker', 'analytics'], store);
      const reader = openReader(store, 'analytics');
      try {
        // Consuming before the stream starts: wait for its consumer on the queue.
        await pollUntil(async () => (await ctx.sys.queue(WORK_QUEUE)).consumers > 0, 30_000, 100);
        const cpuBefore = cpuSeconds(worker.pid);
        const published = await ctx.sys.runTool<{ rate: number; returned: number; nacked: number }>('rawPublish', {
          amqpUrl: ctx.sys.amqpUrl,
          count,
          outstanding: ctx.sizes.outstanding,
          firstIndex: round * 10_000_000,
          rate,
        });
        const done = await pollUntil(async () => (await scalar(reader, 'SELECT count(*) FROM processed_messages')) >= count, 60_000, 100);
        if (!done) throw new Error(`steady: the worker did not process ${count} messages within 60 s`);
        const cpu = cpuSeconds(worker.pid) - cpuBefore;
        const transactions = await scalar(reader, 'SELECT count(DISTINCT processed_at) FROM processed_messages');
        runs.push({ driver: d.id, cpuUsPerMessage: (cpu * 1e6) / count, transactions, messages: count, publishedRate: published.rate });
      } finally {
        await reader.close();
        await worker.stop(30_000);
      }
    }
  }
  const of = (id: string) => runs.filter((r) => r.driver === id);
  const better = of('better-sqlite3');
  const node = of('sqlite3');
  const cpuBetter = median(better.map((r) => r.cpuUsPerMessage));
  const cpuNode = median(node.map((r) => r.cpuUsPerMessage));
  const perTx = (rs: Run[]) => median(rs.map((r) => r.messages / r.transactions));
  const rows: Row[] = [
    {
      measure: `analytics worker CPU per message at a steady ${fmt(rate)}/s, SQLite, better-sqlite3`,
      warren: us(cpuBetter),
      reference: `${us(cpuNode)} node-sqlite3 (default)`,
      ratio: `${fmt(cpuBetter / cpuNode, 2)}×`,
      target: 'reported',
    },
    {
      measure: 'messages per transaction',
      warren: fmt(perTx(better), 1),
      reference: `${fmt(perTx(node), 1)} node-sqlite3`,
      target: 'reported',
    },
  ];
  const notes = [
    `\`warren worker analytics\` on a fresh SQLite directory per round, consuming while a raw confirm-channel publisher sends ${fmt(count)} tweets at ${fmt(rate)}/s; ${ROUNDS} rounds in alternating order, medians. CPU is the worker process's from /proc over the stream until its last inbox record; transactions are the distinct processed_at of its inbox records.`,
    '',
    '| driver | round | CPU per message | messages per transaction | published/s |',
    '|---|---|---|---|---|',
    ...runs.map(
      (r, i) => `| ${r.driver} | ${Math.floor(i / 2) + 1} | ${us(r.cpuUsPerMessage)} | ${fmt(r.messages / r.transactions, 1)} | ${fmt(r.publishedRate)} |`,
    ),
  ];
  return { id: 'steady', title: 'Consume at a steady rate', rows, notes };
}
