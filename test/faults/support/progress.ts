/** @file
 * What a fault costs while it lasts, seen from the processes themselves: a
 * counter of each process's /metrics (confirmed publishes of an API,
 * settled deliveries of a worker) sampled every few hundred milliseconds,
 * and the gaps in which it did not move.
 */
import { metricValue } from '../../support/metricsText';

export interface CounterSource {
  name: string;
  /** The process's GET /metrics. */
  url: string;
  /** The counter to follow (summed over its labels). */
  metric: string;
}

/** When a counter was seen to move: the sample times at which it was higher than at the sample before. */
export interface CounterTrace {
  name: string;
  rises: number[];
}

/** The longest time within [from, to] in which the counter did not move, and when that stretch ended. */
export function longestStill(rises: readonly number[], from: number, to: number): { ms: number; endedAt: number } {
  let last = from;
  let best = { ms: 0, endedAt: from };
  for (const t of [...rises.filter((r) => r > from && r <= to), to]) {
    if (t - last > best.ms) best = { ms: t - last, endedAt: t };
    last = t;
  }
  return best;
}

/** The first time after `at` the counter moved; undefined if it never did. */
export function firstRiseAfter(rises: readonly number[], at: number): number | undefined {
  return rises.find((r) => r > at);
}

/** Samples every source's counter until stopped. */
export class CounterSampler {
  private readonly traces: CounterTrace[];
  private readonly last: (number | undefined)[];
  private timer: NodeJS.Timeout | undefined;
  private busy = false;

  constructor(
    private readonly sources: CounterSource[],
    private readonly everyMs = 200,
  ) {
    this.traces = sources.map((s) => ({ name: s.name, rises: [] }));
    this.last = sources.map(() => undefined);
  }

  start(): void {
    this.timer = setInterval(() => void this.sample(), this.everyMs);
  }

  stop(): CounterTrace[] {
    clearInterval(this.timer);
    return this.traces;
  }

  private async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      await Promise.all(
        this.sources.map(async (source, i) => {
          try {
            const text = await (await fetch(source.url, { signal: AbortSignal.timeout(2000) })).text();
            const value = metricValue(text, source.metric) ?? 0;
            const seenAt = Date.now();
            const before = this.last[i];
            if (before !== undefined && value > before) this.traces[i]!.rises.push(seenAt);
            this.last[i] = value;
          } catch {
            // A process too busy to answer shows as a gap, which is what it is.
          }
        }),
      );
    } finally {
      this.busy = false;
    }
  }
}
