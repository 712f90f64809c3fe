/**
 * @file 6. Relays: two `warren api` processes relaying one PostgreSQL outbox
 * against one, on the same backlog size in the same run, and how many rows
 * reached the queue twice (by message id).
 */
import amqplib from 'amqplib';
import type { BenchContext } from '../lib/context';
import { openReader, outboxBacklog } from '../lib/reader';
import type { ScenarioResult } from '../lib/report';
import { freePort, type Proc, type Store } from '../lib/system';
import { fmt, pollUntil } from '../lib/stats';
import { tweetEvent } from '../lib/tweets';
import { WORK_QUEUE } from '../lib/workers';
import { openDatabase } from '../../src/db/knex';
import { enqueueEvents } from '../../src/outbox/store';

interface RelaysRun {
  processes: number;
  rate: number;
  seconds: number;
  /** Rows each process marked sent, by process. */
  perProcess: number[];
  /** Messages that reached the queue, and how many message ids among them came more than once. */
  delivered: number;
  twice: number;
  /** The longest time between two consecutive marks: how long the relays stalled at worst. */
  longestGapMs: number;
}

const ROUNDS = 2;

export async function relays(ctx: BenchContext): Promise<ScenarioResult> {
  // What the broker takes from one raw publisher here, for scale: two relays cannot pass what the broker accepts.
  await ctx.sys.purge(WORK_QUEUE);
  const raw = await ctx.sys.runTool<{ rate: number }>('rawPublish', {
    amqpUrl: ctx.sys.amqpUrl,
    count: ctx.sizes.messages,
    outstanding: ctx.sizes.outstanding,
  });
  // One, two, one, two: load from other work on a shared machine comes and goes, so each count is run twice, interleaved, and its best run taken.
  const runs: RelaysRun[] = [];
  for (let round = 0; round < ROUNDS; round++) for (const processes of [1, 2]) runs.push(await relaysRun(ctx, processes));
  const best = (processes: number) => runs.filter((r) => r.processes === processes).reduce((a, b) => (b.rate > a.rate ? b : a));
  const rates = (processes: number) =>
    runs
      .filter((r) => r.processes === processes)
      .map((r) => fmt(r.rate))
      .join(', ');
  const one = best(1);
  const two = best(2);
  const ratio = two.rate / one.rate;
  const twice = runs.reduce((sum, r) => sum + r.twice, 0);
  const delivered = runs.reduce((sum, r) => sum + r.delivered, 0);
  return {
    id: 'relays',
    title: '6. Relays on PostgreSQL',
    rows: [
      {
        measure: '2 vs 1 API processes relaying one outbox, PostgreSQL',
        warren: `${fmt(two.rate)} rows/s`,
        reference: `${fmt(one.rate)} rows/s with 1`,
        ratio: `${fmt(ratio, 2)}×`,
        target: '≥ 1.6×',
        met: ratio >= 1.6,
      },
      {
        measure: 'rows published twice (by message id at the queue)',
        warren: fmt(twice),
        reference: `${fmt(delivered)} messages received over ${runs.length} runs`,
        target: '0',
        met: twice === 0,
      },
    ],
    notes: [
      `Each run: \`warren api\` started once or twice on a fresh, migrated PostgreSQL database (default configuration; claims FOR UPDATE SKIP LOCKED) and waited for until each has verified its topology, then ${fmt(ctx.sizes.messages)} tweet.created rows committed into the outbox in one transaction, relayed to exchange \`tweets\` → quorum queue \`${WORK_QUEUE}\` with no consumer.`,
      `The rate is taken from the rows' own \`sent_at\` marks (the database's clock, the same for every process): rows after the first mark / (last mark − first mark). Best of ${ROUNDS} runs each (one process: ${rates(1)} rows/s; two: ${rates(2)}). One process's best: ${fmt(one.rate)} rows/s over ${fmt(one.seconds, 1)} s, longest gap between two marks ${fmt(one.longestGapMs)} ms. Two's best: ${fmt(two.rate)} rows/s over ${fmt(two.seconds, 1)} s, longest gap ${fmt(two.longestGapMs)} ms, the processes' shares ${two.perProcess.map((n) => fmt(n)).join(' and ')} rows (from their \`warren_relay_rows_total\` metrics).`,
      `Duplicates are counted at the queue after each run: every message drained and its message id counted (${runs.map((r) => fmt(r.delivered)).join(', ')} messages for ${fmt(ctx.sizes.messages)} rows each).`,
      `For scale, raw amqplib (one confirm channel, ${ctx.sizes.outstanding} confirms outstanding, the same ${fmt(ctx.sizes.messages)} messages into the same queue) published ${fmt(raw.rate)} msg/s in this run.`,
      'On 2 cores the broker, PostgreSQL and the API processes share the same CPUs, so a second relay competes with them as much as it adds.',
    ],
  };
}

/**
 * `processes` API processes started on a fresh database and waited for until
 * each may publish (its topology verified), then one backlog committed at
 * once, so every relay sees all of it from the first poll on; the queue
 * drained and counted by message id after.
 */
async function relaysRun(ctx: BenchContext, processes: number): Promise<RelaysRun> {
  const n = ctx.sizes.messages;
  await ctx.sys.purge(WORK_QUEUE);
  const store = await ctx.sys.postgresStore(`relays-${processes}`);
  const apis: { proc: Proc; port: number }[] = [];
  for (let i = 0; i < processes; i++) {
    const port = await freePort();
    apis.push({ proc: ctx.sys.warren(['api'], store, { WARREN_HTTP_PORT: String(port) }), port });
  }
  const reader = openReader(store, 'api');
  try {
    for (const api of apis) {
      if (!(await pollUntil(() => mayPublish(api.port), 60_000, 100)))
        throw new Error(`warren api on ${api.port} never verified its topology\n${api.proc.tail()}`);
    }
    await writeBacklog(store, n);
    const done = await pollUntil(async () => (await outboxBacklog(reader)) === 0, Math.max(60_000, n * 2), 100);
    if (!done) throw new Error(`the relays left ${await outboxBacklog(reader)} of ${n} rows unsent\n${apis.map((a) => a.proc.tail()).join('\n')}`);
    const [span] = await reader.all<{ first: string; last: string }>('SELECT min(sent_at) AS first, max(sent_at) AS last FROM outbox');
    const [atFirst] = await reader.all<{ c: string }>('SELECT count(*) AS c FROM outbox WHERE sent_at = ?', [span!.first]);
    const seconds = (Number(span!.last) - Number(span!.first)) / 1000;
    const rate = (n - Number(atFirst!.c)) / seconds;
    const [gap] = await reader.all<{ ms: string }>(
      'SELECT max(d) AS ms FROM (SELECT sent_at - lag(sent_at) OVER (ORDER BY sent_at) AS d FROM outbox) AS marks',
    );
    const perProcess = await Promise.all(apis.map((a) => relayedRows(a.port)));
    const { delivered, twice } = await drainCountingIds(ctx.sys.amqpUrl, n);
    return { processes, rate, seconds, perProcess, delivered, twice, longestGapMs: Number(gap!.ms) };
  } finally {
    await reader.close();
    await Promise.all(apis.map((a) => a.proc.stop()));
  }
}

/** Whether the API on `port` answers and reports its topology verified (its relay publishes only then). */
async function mayPublish(port: number): Promise<boolean> {
  try {
    const body = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as { checks?: { name: string; ok: boolean }[] };
    return body.checks?.some((c) => c.name === 'topology' && c.ok) ?? false;
  } catch {
    return false;
  }
}

/** The whole backlog in one transaction: committed at once, as a burst of requests would leave it. */
async function writeBacklog(store: Store, n: number): Promise<void> {
  const db = openDatabase(store.config, 'api');
  try {
    await db.transaction(async (tx) => {
      for (let i = 0; i < n; i += 500)
        await enqueueEvents(
          tx,
          Array.from({ length: Math.min(500, n - i) }, (_, k) => tweetEvent(i + k)),
        );
    });
  } finally {
    await db.destroy();
  }
}

/** Rows this API process's relay marked sent, from its /metrics. */
async function relayedRows(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('warren_relay_rows_total') && l.includes('outcome="sent"'));
  return line ? Number(line.trim().split(/\s+/).pop()) : NaN;
}

/** Takes every message off the work queue, counting message ids seen more than once; stops once `expected` are in and the queue is empty. */
async function drainCountingIds(amqpUrl: string, expected: number): Promise<{ delivered: number; twice: number }> {
  const conn = await amqplib.connect(amqpUrl);
  try {
    const ch = await conn.createChannel();
    await ch.prefetch(2000);
    const seen = new Map<string, number>();
    let delivered = 0;
    await ch.consume(WORK_QUEUE, (msg) => {
      if (!msg) return;
      delivered++;
      const id = String(msg.properties.messageId);
      seen.set(id, (seen.get(id) ?? 0) + 1);
      ch.ack(msg);
    });
    await pollUntil(async () => delivered >= expected, 60_000, 50);
    // Anything published twice would arrive after the first `expected`: wait for the queue to stay empty a moment.
    await new Promise((r) => setTimeout(r, 500));
    const left = (await ch.checkQueue(WORK_QUEUE)).messageCount;
    if (left) await pollUntil(async () => (await ch.checkQueue(WORK_QUEUE)).messageCount === 0, 30_000, 50);
    await ch.close();
    return { delivered, twice: [...seen.values()].filter((c) => c > 1).length };
  } finally {
    await conn.close().catch(() => undefined);
  }
}
