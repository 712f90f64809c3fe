import path from 'node:path';
import type { BenchContext } from './context';
import type { Deployment } from './deployment';
import { LagProbe } from './lagProbe';
import type { Distribution } from './stats';

export interface PacedFigures {
  attempted: number;
  accepted: number;
  statuses: Record<string, number>;
  achievedRate: number;
  sendSeconds: number;
  maxBehindMs: number;
  p50: number;
  p99: number;
  max: number;
}

export interface LagRun {
  load: PacedFigures;
  lag: Distribution;
  /** Accepted tweets not counted by the end of the drain bound. */
  missing: number;
  probe: { polls: number; meanMs: number; p99Ms: number; intervalMs: number };
  drainSeconds: number;
}

let runSeq = 0;

/**
 * A steady `rate` of tweets for `seconds` against a deployment (paced load
 * in its own process), with the lag probe watching analytics; then waits
 * (bounded) until every accepted tweet is counted and returns the lags.
 */
export async function pacedLagRun(ctx: BenchContext, dep: Deployment, rate: number, seconds: number, probeIntervalMs: number): Promise<LagRun> {
  const probe = new LagProbe(dep.store, probeIntervalMs);
  await probe.start();
  const recordFile = path.join(ctx.sys.runDir, `paced-${++runSeq}.txt`);
  let load: PacedFigures;
  let drainSeconds = 0;
  try {
    load = await ctx.sys.runTool<PacedFigures>('pacedLoad', {
      baseUrl: dep.baseUrl,
      tokens: dep.tokens,
      rate,
      durationSec: seconds,
      maxInFlight: 256,
      recordFile,
      firstIndex: runSeq * 1_000_000,
    });
    const ended = Date.now();
    const deadline = ended + ctx.sizes.drainSeconds * 1000;
    const before = probe.count;
    while (Date.now() < deadline) {
      const p = await dep.progress();
      if (p.backlog === 0 && p.counted >= p.tweets && probe.count >= before) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // One more period so the probe has seen the last commit.
    await new Promise((r) => setTimeout(r, probeIntervalMs * 3 + 20));
    drainSeconds = (Date.now() - ended) / 1000;
  } finally {
    await probe.stop();
  }
  const { lag, missing } = await probe.lags(recordFile);
  return { load, lag, missing, probe: { ...probe.overhead(), intervalMs: probeIntervalMs }, drainSeconds };
}
