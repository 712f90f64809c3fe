import type { BenchContext } from '../lib/context';
import { pacedLagRun } from '../lib/paced';
import type { ScenarioResult } from '../lib/report';
import { fmt, ms } from '../lib/stats';

/**
 * 7. Latency when quiet: 10 tweets/s, lag from 201 to counted in analytics.
 * Batching must cost nothing here: no timer waiting for a batch to fill.
 */
export async function quiet(ctx: BenchContext): Promise<ScenarioResult> {
  const { quietRate, quietSeconds } = ctx.sizes;
  // The previous build first, when there is one, on a deployment of its own.
  const baseline = await ctx.baselineDeployment();
  const before = baseline ? await pacedLagRun(ctx, baseline.dep, quietRate, quietSeconds, 1) : undefined;
  const dep = await ctx.deployment();
  await dep.drained(ctx.sizes.drainSeconds * 1000);
  const r = await pacedLagRun(ctx, dep, quietRate, quietSeconds, 1);
  return {
    id: 'quiet',
    title: '7. Latency when quiet',
    rows: [
      {
        measure: `lag 201 → counted p50, ${quietRate} tweets/s`,
        warren: ms(r.lag.p50),
        reference: before ? `previous build ${ms(before.lag.p50)}` : undefined,
        target: '≤ 20 ms',
        met: r.lag.p50 <= 20 && r.missing === 0,
      },
      {
        measure: `lag 201 → counted p99, ${quietRate} tweets/s`,
        warren: ms(r.lag.p99),
        reference: `max ${ms(r.lag.max)}${before ? `; previous build p99 ${ms(before.lag.p99)}` : ''}`,
        target: '≤ 50 ms',
        met: r.lag.p99 <= 50 && r.missing === 0,
      },
    ],
    notes: [
      `${fmt(r.load.accepted)} tweets at ${quietRate}/s for ${quietSeconds} s, one every ${fmt(1000 / quietRate, 0)} ms, against the \`warren start\` deployment at rest (its earlier backlog drained first). HTTP: p50 ${ms(r.load.p50)}, p99 ${ms(r.load.p99)}.`,
      `Lag from each 201 to its tweet counted in analytics: p50 ${ms(r.lag.p50)}, p99 ${ms(r.lag.p99)}, max ${ms(r.lag.max)}; ${r.missing} not counted within ${ctx.sizes.drainSeconds} s.`,
      ...(before && baseline
        ? [
            `The previous build (${baseline.label}), the same load first on a \`warren start\` of its own: lag p50 ${ms(before.lag.p50)}, p99 ${ms(before.lag.p99)}, max ${ms(before.lag.max)}; ${before.missing} not counted.`,
          ]
        : []),
      `Probe: polled every ${r.probe.intervalMs} ms (${fmt(r.probe.polls)} polls, ${fmt(r.probe.meanMs, 2)} ms each on average, p99 ${fmt(r.probe.p99Ms, 2)} ms), so a lag is overstated by at most ${fmt(r.probe.intervalMs + r.probe.p99Ms, 1)} ms.`,
    ],
  };
}
