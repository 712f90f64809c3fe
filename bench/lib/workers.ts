import type { BenchContext } from './context';
import { openReader, processedSpan } from './reader';
import type { Store } from './system';
import { pollUntil } from './stats';

export const WORK_QUEUE = 'analytics.tweets';

/** Empties the work queue and fills it with `count` tweet.created messages as the relay publishes them. */
export async function fillWorkQueue(ctx: BenchContext, count: number, firstIndex = 0): Promise<{ rate: number; seconds: number }> {
  await ctx.sys.purge(WORK_QUEUE);
  const r = await ctx.sys.runTool<{ rate: number; seconds: number; returned: number; nacked: number }>('rawPublish', {
    amqpUrl: ctx.sys.amqpUrl,
    count,
    outstanding: ctx.sizes.outstanding,
    firstIndex,
  });
  if (r.returned || r.nacked) throw new Error(`filling ${WORK_QUEUE}: ${r.returned} returned, ${r.nacked} nacked`);
  const depth = (await ctx.sys.queue(WORK_QUEUE)).messages;
  if (depth !== count) throw new Error(`${WORK_QUEUE} holds ${depth} messages, expected ${count}`);
  return r;
}

export interface ConsumeFigures {
  processes: number;
  count: number;
  seconds: number;
  rate: number;
  parked: number;
  /** Whether every message was processed within the bound. */
  complete: boolean;
}

/**
 * Pre-fills the work queue, starts `warren worker analytics` (with
 * `--processes N` when N > 1) on `store`, and times it from the first inbox
 * record to the last (processed_at, written in the effect's transaction):
 * process start-up is not counted, only consuming.
 */
export async function timeAnalyticsWorker(
  ctx: BenchContext,
  store: Store,
  processes: number,
  extraEnv: NodeJS.ProcessEnv = {},
  cli?: string,
): Promise<ConsumeFigures> {
  const count = ctx.sizes.messages;
  await fillWorkQueue(ctx, count);
  const parkedBefore = (await ctx.sys.queue(`${WORK_QUEUE}.dlq`)).messages;
  const args = processes > 1 ? ['worker', 'analytics', '--processes', String(processes)] : ['worker', 'analytics'];
  const worker = ctx.sys.warren(args, store, extraEnv, { cli });
  const reader = openReader(store, 'analytics');
  try {
    const boundMs = Math.max(60_000, (count / 300) * 1000);
    const done = await pollUntil(async () => (await processedSpan(reader)).n >= count || !worker.running, boundMs, 250);
    if (!worker.running) throw new Error(`the worker exited (${worker.exitCode}):\n${worker.tail()}`);
    const span = await processedSpan(reader);
    const parked = (await ctx.sys.queue(`${WORK_QUEUE}.dlq`)).messages - parkedBefore;
    const seconds = (span.last - span.first) / 1000;
    return { processes, count: span.n, seconds, rate: span.n / seconds, parked, complete: done === true && span.n >= count };
  } finally {
    await reader.close();
    await worker.stop(30_000);
  }
}
