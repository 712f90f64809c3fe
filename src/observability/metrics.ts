import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PublishFailure } from '../broker/publisher';
import { buildInfo, type BuildInfo } from '../build';

/**
 * Warren's Prometheus metrics. Every process (the API, each worker) has its
 * own registry and serves it at its own `/metrics`; Prometheus adds the
 * `instance` label, the registry adds `warren_service` (not `service`, which
 * the Prometheus Operator sets to the Kubernetes service's name, renaming
 * ours `exported_service`) and `warren_build_info`. The collaborators keep the
 * counts they already keep for their own reasons (the consumer's `counts`,
 * the relay's `pending()`), and the metrics read them when scraped: a scrape
 * costs the hot paths nothing. Only what has no count of its own (latencies,
 * per-exchange publishes, relay lag) is observed as it happens.
 */

/** Seconds since `started` (a process.hrtime.bigint()). */
export function secondsSince(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/**
 * One registry per process, labelled with its service, with the build it runs
 * (`warren_build_info{version,commit} 1`, to join on or count versions during
 * a rollout); the process's own figures (CPU, memory, event loop) when asked.
 */
export function createRegistry(service: string, opts: { processMetrics?: boolean; build?: BuildInfo } = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ warren_service: service });
  const build = opts.build ?? buildInfo();
  new Gauge({
    name: 'warren_build_info',
    help: 'Always 1; its labels say which version of Warren, built from which commit, this process runs',
    labelNames: ['version', 'commit'],
    registers: [registry],
  }).set({ version: build.version, commit: build.commit }, 1);
  if (opts.processMetrics) collectDefaultMetrics({ register: registry });
  return registry;
}

/** Seconds, from a millisecond to ten: the histograms of request, confirm and handler latencies. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
// An outage holds events in the outbox for minutes: the lag buckets reach that far.
const LAG_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];

/** Request duration by the router's pattern (never the raw path, whose ids would make a series per user). */
export class HttpMetrics {
  readonly duration: Histogram<'method' | 'route' | 'status'>;

  constructor(registry: Registry) {
    this.duration = new Histogram({
      name: 'warren_http_request_duration_seconds',
      help: 'HTTP requests answered by the API, by method, route pattern and status',
      labelNames: ['method', 'route', 'status'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
  }

  observe(method: string, route: string, status: number, seconds: number): void {
    this.duration.observe({ method, route, status: String(status) }, seconds);
  }
}

/** Confirmed publishes by exchange, failures by reason, and how long confirms take. */
export class PublishMetrics {
  private readonly published: Counter<'exchange'>;
  private readonly failures: Counter<'exchange' | 'reason'>;
  private readonly confirmDuration: Histogram<'exchange'>;

  constructor(registry: Registry) {
    this.published = new Counter({
      name: 'warren_messages_published_total',
      help: 'Messages published and confirmed by the broker (not returned), by exchange',
      labelNames: ['exchange'],
      registers: [registry],
    });
    this.failures = new Counter({
      name: 'warren_publish_failures_total',
      help: 'Publishes not confirmed (returned, nacked, not connected, channel closed, timeout), by exchange and reason',
      labelNames: ['exchange', 'reason'],
      registers: [registry],
    });
    this.confirmDuration = new Histogram({
      name: 'warren_publish_confirm_duration_seconds',
      help: 'Time from publish to the broker confirm, by exchange (confirmed publishes only)',
      labelNames: ['exchange'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    });
  }

  /** The ConfirmPublisher's observer: one call per publish, when it settles. */
  readonly settled = (exchange: string, seconds: number, failure?: PublishFailure): void => {
    if (failure) {
      this.failures.inc({ exchange, reason: failure });
      return;
    }
    this.published.inc({ exchange });
    this.confirmDuration.observe({ exchange }, seconds);
  };
}

/** What the metrics read of the outbox relay (src/outbox/relay.ts). */
export interface RelaySource {
  readonly counts: { readonly sent: number; readonly failed: number };
  pending(): number;
  status(): { ok: boolean };
}

/** Outbox backlog, relay lag (created -> confirmed), and rows relayed. */
export class RelayMetrics {
  private relay: RelaySource | undefined;
  private readonly lag: Histogram;

  constructor(registry: Registry) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- prom-client calls collect() with `this` bound to the metric
    const metrics = this;
    new Gauge({
      name: 'warren_outbox_backlog',
      help: "Outbox events written but not yet confirmed by the broker, as of the relay's last count",
      registers: [registry],
      collect() {
        if (metrics.relay) this.set(metrics.relay.pending());
      },
    });
    new Gauge({
      name: 'warren_relay_up',
      help: "1 while the outbox relay's last cycle succeeded, 0 while it fails",
      registers: [registry],
      collect() {
        if (metrics.relay) this.set(metrics.relay.status().ok ? 1 : 0);
      },
    });
    new Counter({
      name: 'warren_relay_rows_total',
      help: 'Outbox rows the relay published and marked sent (outcome sent), or gave back for another try (outcome failed)',
      labelNames: ['outcome'],
      registers: [registry],
      collect() {
        if (!metrics.relay) return;
        this.reset();
        this.inc({ outcome: 'sent' }, metrics.relay.counts.sent);
        this.inc({ outcome: 'failed' }, metrics.relay.counts.failed);
      },
    });
    this.lag = new Histogram({
      name: 'warren_relay_lag_seconds',
      help: "Time from an event's commit to the outbox to its broker confirm",
      buckets: LAG_BUCKETS,
      registers: [registry],
    });
  }

  watch(relay: RelaySource): void {
    this.relay = relay;
  }

  /** The relay's observer: a batch's rows and their outcomes (null = confirmed), as they settle. */
  readonly published = (rows: readonly { created_at: number | string }[], outcomes: readonly (Error | null)[], now = Date.now()): void => {
    rows.forEach((row, i) => {
      if (outcomes[i] === null) this.lag.observe(Math.max(0, now - Number(row.created_at)) / 1000);
    });
  };
}

export interface QueueFigures {
  queue: string;
  ok: boolean;
  messages?: number;
  consumers?: number;
}

/** The broker's own view of the work queues (depth, consumers), as the API's readiness probe sees it. */
export class QueueMetrics {
  private last: { at: number; figures: Promise<QueueFigures[]> } | undefined;

  constructor(
    registry: Registry,
    private readonly probe: () => Promise<QueueFigures[]>,
  ) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- prom-client calls collect() with `this` bound to the metric
    const metrics = this;
    // A scrape collects every metric at once: both gauges share one probe.
    const collectFrom = (gauge: Gauge<'queue'>, pick: (f: QueueFigures) => number | undefined) => async () => {
      const figures = await metrics.figures();
      gauge.reset();
      for (const f of figures) if (f.ok) gauge.set({ queue: f.queue }, pick(f) ?? 0);
    };
    const messages: Gauge<'queue'> = new Gauge({
      name: 'warren_queue_messages',
      help: 'Messages ready or unacknowledged in a work queue, as the broker reports it to the API',
      labelNames: ['queue'],
      registers: [registry],
      collect: () => collectFrom(messages, (f) => f.messages)(),
    });
    const consumers: Gauge<'queue'> = new Gauge({
      name: 'warren_queue_consumers',
      help: 'Consumers subscribed to a work queue (every worker process, on every host), as the broker reports it to the API',
      labelNames: ['queue'],
      registers: [registry],
      collect: () => collectFrom(consumers, (f) => f.consumers)(),
    });
  }

  private figures(): Promise<QueueFigures[]> {
    if (!this.last || Date.now() - this.last.at > 1000) this.last = { at: Date.now(), figures: this.probe().catch(() => []) };
    return this.last.figures;
  }
}
