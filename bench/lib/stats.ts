/** @file Small numeric helpers shared by the scenarios: percentiles, rates and how figures are printed. */

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface Distribution {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function distribution(values: number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.length ? sorted[sorted.length - 1]! : NaN };
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes of one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** 12345.6 -> "12,346"; small numbers keep one decimal. */
export function fmt(n: number, digits?: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  const d = digits ?? (Math.abs(n) >= 100 || Number.isInteger(n) ? 0 : 1);
  return n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

export function ms(n: number): string {
  return Number.isFinite(n) ? `${fmt(n, n < 10 ? 1 : 0)} ms` : 'n/a';
}

export function mb(bytes: number): string {
  return Number.isFinite(bytes) ? `${fmt(bytes / 1048576, 0)} MB` : 'n/a';
}

export function pct(ratio: number): string {
  return Number.isFinite(ratio) ? `${fmt(ratio * 100, 0)} %` : 'n/a';
}

/** Polls until `probe` returns something other than undefined/false, or the time is up (then undefined). */
export async function pollUntil<T>(probe: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 100): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined && v !== false) return v;
    if (Date.now() >= deadline) return undefined;
    await sleep(everyMs);
  }
}

/** One gauge of a Prometheus text exposition, or NaN. */
export function gauge(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
}

/** A server's /metrics text ('' when it does not answer). */
export async function scrape(url: string): Promise<string> {
  try {
    return await (await fetch(url)).text();
  } catch {
    return '';
  }
}

/**
 * The event-loop delay p99 (ms) a prom-client process saw since its last
 * scrape: its histogram is reset by each scrape, so scrape once before a run
 * and read this after it.
 */
export async function loopDelayP99Ms(metricsUrl: string): Promise<number> {
  return gauge(await scrape(metricsUrl), 'nodejs_eventloop_lag_p99_seconds') * 1000;
}
