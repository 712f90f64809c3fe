/** @file
 * The console's overview: every queue's depth, consumers and rates now,
 * and the broker's samples of the last hour (the management API, asked with
 * `lengths_age`/`msg_rates_age`: it keeps a minute's resolution for an
 * hour, so the chart survives a console restart and needs no sampler
 * here); the outbox backlog and the relay's lag from the API's own
 * `/metrics` (the console has no right to the API's database, and the
 * figures are the relay's own); parked messages per DLQ (the broker's
 * depth and the index's count) and per normalised reason (the index).
 * Each source fails alone: its part says why, the rest is shown.
 */
import type { Knex } from 'knex';
import { vhostOf, type Config } from '../config';
import { queueStatus, type QueueStatus } from '../ops/status';
import { dlqOf, loadDefinitions, retargetDefinitions, workQueues } from '../topology/definitions';
import { ManagementClient, type QueueHistory, type Sample } from '../topology/management';
import { summariseParked } from './summary';
import { PARKED_TABLE } from '../db/migrations/console';

/** The chart's span and step. */
export const HISTORY = { ageSeconds: 3600, incrSeconds: 60 } as const;

const SOURCE_TIMEOUT_MS = 5000;
/** Reasons shown; the rest are in GET /api/v1/parked/summary. */
const TOP_REASONS = 20;

export interface HistoryPoint {
  at: string;
  /** Messages in the work queues together. */
  depth: number;
  /** Messages parked into the DLQs together during the step before `at`. */
  dlqInflow: number;
}

export interface OutboxFigures {
  source: string;
  backlog: number | null;
  relayUp: boolean | null;
  /** Mean commit-to-confirm time of the rows relayed since the previous look (null: none relayed since, or the first look). */
  relayLagRecentSeconds: number | null;
  /** Mean since the API started. */
  relayLagMeanSeconds: number | null;
  relayedTotal: number | null;
}

export interface Overview {
  at: string;
  broker: { queues: QueueStatus[] } | { error: string };
  outbox: OutboxFigures | { source: string; error: string };
  parked: {
    byDlq: { queue: string; dlq: string; inDlq: number | null; indexed: number }[];
    byReason: { queue: string; kind: string; reason: string; count: number }[];
  };
  history: { incrSeconds: number; points: HistoryPoint[] } | { error: string };
}

/** The values of one metric in Prometheus text, summed over its label sets; null when absent. */
export function metricValue(text: string, name: string): number | null {
  const re = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+(\\S+)`, 'gm');
  let sum: number | null = null;
  for (const m of text.matchAll(re)) {
    const v = Number(m[1]);
    if (Number.isFinite(v)) sum = (sum ?? 0) + v;
  }
  return sum;
}

/** Sums the queues' samples step by step: gauges as they are, counters as the increase over the step before. */
export function historyOf(queues: QueueHistory[], work: readonly string[], incrSeconds: number): HistoryPoint[] {
  const dlqs = new Set(work.map(dlqOf));
  const depth = new Map<number, number>();
  const inflow = new Map<number, number>();
  const step = incrSeconds * 1000;
  // Each queue's samples on the same steps, whatever millisecond the broker took them at.
  const add = (m: Map<number, number>, t: number, v: number) => {
    const at = Math.round(t / step) * step;
    m.set(at, (m.get(at) ?? 0) + v);
  };
  for (const q of queues) {
    if (work.includes(q.name)) for (const s of q.messages_details?.samples ?? []) add(depth, s.timestamp, s.sample);
    if (dlqs.has(q.name)) {
      const samples: Sample[] = [...(q.message_stats?.publish_details?.samples ?? [])].sort((a, b) => a.timestamp - b.timestamp);
      for (let i = 1; i < samples.length; i++) add(inflow, samples[i]!.timestamp, Math.max(0, samples[i]!.sample - samples[i - 1]!.sample));
    }
  }
  const times = [...new Set([...depth.keys(), ...inflow.keys()])].sort((a, b) => a - b);
  return times.map((t) => ({ at: new Date(t).toISOString(), depth: depth.get(t) ?? 0, dlqInflow: inflow.get(t) ?? 0 }));
}

function apiMetricsUrl(config: Config): string {
  const host = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.http.port}/metrics`;
}

/** Collects an overview on each call; keeps the relay's last counters to give the recent lag. */
export class OverviewCollector {
  private lastLag: { sum: number; count: number } | undefined;
  private readonly management: ManagementClient;
  private readonly work: string[];
  private readonly vhost: string;
  private readonly metricsUrl: string;

  constructor(
    private readonly db: Knex,
    config: Config,
  ) {
    this.vhost = vhostOf(config.amqp.url);
    this.work = workQueues(retargetDefinitions(loadDefinitions(config.amqp.definitionsFile), this.vhost));
    this.management = new ManagementClient(config.amqp.managementUrl, SOURCE_TIMEOUT_MS);
    this.metricsUrl = apiMetricsUrl(config);
  }

  async collect(now: number): Promise<Overview> {
    const failed = (err: Error) => err;
    // Two asks: with a range the broker gives each figure as of the range's last whole step, up to a minute old.
    const [queues, history, outbox, indexed, groups] = await Promise.all([
      this.management.listQueues(this.vhost).catch(failed),
      this.management.listQueueHistory(this.vhost, HISTORY.ageSeconds, HISTORY.incrSeconds).catch(failed),
      this.outbox(),
      this.db(PARKED_TABLE).where('status', 'parked').select('queue').count({ n: '*' }).groupBy('queue') as Promise<{ queue: string; n: number | string }[]>,
      summariseParked(this.db),
    ]);
    const byQueue = new Map(indexed.map((r) => [r.queue, Number(r.n)]));
    const infos = queues instanceof Error ? [] : queues;
    const queueNames = [...new Set([...this.work, ...byQueue.keys()])];
    return {
      at: new Date(now).toISOString(),
      broker: queues instanceof Error ? { error: queues.message } : { queues: infos.map((q) => queueStatus(q, this.work)) },
      outbox,
      parked: {
        byDlq: queueNames.map((queue) => {
          const info = infos.find((q) => q.name === dlqOf(queue));
          return { queue, dlq: dlqOf(queue), inDlq: info?.messages ?? null, indexed: byQueue.get(queue) ?? 0 };
        }),
        byReason: groups.slice(0, TOP_REASONS).map(({ queue, kind, reason, count }) => ({ queue, kind, reason, count })),
      },
      history:
        history instanceof Error
          ? { error: history.message }
          : { incrSeconds: HISTORY.incrSeconds, points: historyOf(history, this.work, HISTORY.incrSeconds) },
    };
  }

  private async outbox(): Promise<Overview['outbox']> {
    const source = this.metricsUrl;
    try {
      const res = await fetch(source, { signal: AbortSignal.timeout(SOURCE_TIMEOUT_MS) });
      if (!res.ok) return { source, error: `answered ${res.status}` };
      const text = await res.text();
      const sum = metricValue(text, 'warren_relay_lag_seconds_sum');
      const count = metricValue(text, 'warren_relay_lag_seconds_count');
      const relayUp = metricValue(text, 'warren_relay_up');
      let recent: number | null = null;
      if (sum !== null && count !== null) {
        const last = this.lastLag;
        // A smaller count is a restarted API: its counters began again.
        if (last && count > last.count) recent = (sum - last.sum) / (count - last.count);
        this.lastLag = { sum, count };
      }
      return {
        source,
        backlog: metricValue(text, 'warren_outbox_backlog'),
        relayUp: relayUp === null ? null : relayUp > 0,
        relayLagRecentSeconds: recent,
        relayLagMeanSeconds: sum !== null && count ? sum / count : null,
        relayedTotal: count,
      };
    } catch (err) {
      const cause = (err as Error & { cause?: Error }).cause;
      return { source, error: cause?.message ?? (err as Error).message };
    }
  }
}
