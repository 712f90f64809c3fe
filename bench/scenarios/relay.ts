import type { BenchContext } from '../lib/context';
import { openReader, outboxBacklog } from '../lib/reader';
import type { ScenarioResult } from '../lib/report';
import { baselineBuild, freePort } from '../lib/system';
import { fmt, pct, pollUntil } from '../lib/stats';
import { tweetEvent } from '../lib/tweets';
import { WORK_QUEUE } from '../lib/workers';
import { openDatabase } from '../../src/db/knex';
import { enqueueEvents } from '../../src/outbox/store';

/**
 * 2. Relay: outbox rows relayed per second by `warren api`, against raw
 * amqplib publishing the same messages with 500 confirms outstanding into
 * the same quorum queue.
 */
export async function relay(ctx: BenchContext): Promise<ScenarioResult> {
  const n = ctx.sizes.messages;
  // The ceiling is the best of three runs (each into an empty queue): other work on a shared machine only ever lowers it.
  const ceilingRuns: { rate: number; seconds: number }[] = [];
  for (let i = 0; i < 3; i++) {
    await ctx.sys.purge(WORK_QUEUE);
    ceilingRuns.push(
      await ctx.sys.runTool<{ rate: number; seconds: number }>('rawPublish', { amqpUrl: ctx.sys.amqpUrl, count: n, outstanding: ctx.sizes.outstanding }),
    );
  }
  const raw = ceilingRuns.reduce((a, b) => (b.rate > a.rate ? b : a));
  await ctx.sys.purge(WORK_QUEUE);

  // The previous build first, when there is one, on the same backlog in a store of its own.
  const baseline = baselineBuild();
  const before = baseline ? await relayRun(ctx, 'relay-baseline', baseline.cli) : undefined;
  const { rate, firstBatch } = await relayRun(ctx, 'relay');
  const depth = (await ctx.sys.queue(WORK_QUEUE)).messages;
  await ctx.sys.purge(WORK_QUEUE);
  const ratio = rate / raw.rate;
  const was = before ? `; previous build ${fmt(before.rate)} (${pct(before.rate / raw.rate)})` : '';
  return {
    id: 'relay',
    title: '2. Relay',
    rows: [
      {
        measure: 'outbox rows relayed/s',
        warren: fmt(rate),
        reference: `${fmt(raw.rate)} raw amqplib, ${ctx.sizes.outstanding} confirms outstanding${was}`,
        ratio: pct(ratio),
        target: '≥ 80 %',
        met: ratio >= 0.8,
      },
    ],
    notes: [
      `${fmt(n)} tweet.created rows were written into a stopped API's outbox, then \`warren api\` started and relayed them (batch size, poll interval and claim statements as configured by default) to exchange \`tweets\` → quorum queue \`${WORK_QUEUE}\` with no consumer.`,
      `The rate is taken from the rows' own \`sent_at\` marks: (${fmt(n)} − ${fmt(firstBatch)} rows of the first mark) / (last mark − first mark), so process start-up and topology checks are not counted. ${fmt(depth)} messages were in the queue afterwards.`,
      ...(before && baseline
        ? [`The previous build (${baseline.label}) relayed the same backlog from a store of its own first: ${fmt(before.rate)} rows/s.`]
        : []),
      `Ceiling: raw amqplib, one confirm channel, the same ${fmt(n)} messages with the relay's properties (persistent, mandatory), at most ${ctx.sizes.outstanding} unconfirmed, best of three runs (${ceilingRuns.map((r) => fmt(r.rate)).join(', ')} msg/s): ${fmt(raw.rate)} msg/s.`,
    ],
  };
}

/** The backlog written straight into a stopped API's outbox, then `warren api` (of `cli`'s build) starts and relays it; the queue is emptied after. */
async function relayRun(ctx: BenchContext, label: string, cli?: string): Promise<{ rate: number; firstBatch: number }> {
  const n = ctx.sizes.messages;
  const store = await ctx.sys.sqliteStore(label);
  const db = openDatabase(store.config, 'api');
  try {
    for (let i = 0; i < n; i += 500) {
      const events = Array.from({ length: Math.min(500, n - i) }, (_, k) => tweetEvent(i + k));
      await db.transaction((tx) => enqueueEvents(tx, events));
    }
  } finally {
    await db.destroy();
  }
  const port = await freePort();
  const api = ctx.sys.warren(['api'], store, { WARREN_HTTP_PORT: String(port) }, { cli });
  const reader = openReader(store, 'api');
  let rate = NaN;
  let firstBatch = 0;
  try {
    const done = await pollUntil(async () => (await outboxBacklog(reader)) === 0, Math.max(60_000, n), 100);
    if (!done) throw new Error(`the relay left ${await outboxBacklog(reader)} of ${n} rows unsent\n${api.tail()}`);
    const [span] = await reader.all<{ first: number; last: number }>('SELECT min(sent_at) AS first, max(sent_at) AS last FROM outbox');
    const [atFirst] = await reader.all<{ c: number }>('SELECT count(*) AS c FROM outbox WHERE sent_at = ?', [span!.first]);
    firstBatch = Number(atFirst!.c);
    // Rows sent after the first mark, over the time from the first mark to the last.
    rate = (n - firstBatch) / ((Number(span!.last) - Number(span!.first)) / 1000);
  } finally {
    await reader.close();
    await api.stop();
  }
  if (cli) await ctx.sys.purge(WORK_QUEUE);
  return { rate, firstBatch };
}
