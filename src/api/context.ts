import type { RouterContext, RouterMiddleware } from '@koa/router';
import type { Knex } from 'knex';
import type { Config } from '../config';
import type { GroupCommit } from '../db/groupCommit';
import type { Logger } from '../log';
import type { HttpMetrics } from '../observability/metrics';
import type { Registry } from 'prom-client';
import type { TraceHeaders } from '../observability/traceContext';
import type { TracedSpan, Tracing } from '../observability/tracing';
import type { NotificationHub } from './notificationHub';
import type { TimelineSource } from './timelineClient';

/**
 * What the app is given and what each request carries down the middleware
 * chain: the types every middleware and route shares, kept apart from
 * app.ts so that composing the app and being composed do not import each other.
 */
export interface ReadinessCheck {
  name: string;
  ok: boolean;
  detail?: string;
  /** The timeline check's: each timeline instance the API's client sees (by address), and whether its circuit has set it aside. */
  instances?: { url: string; setAside: boolean }[];
}

export interface AppDeps {
  config: Config;
  /** The api database, opened with attachReadModels: what requests read. */
  db: Knex;
  /** The connection every write goes through, grouped (src/db/groupCommit.ts); defaults to `db`. */
  writeDb?: Knex;
  /** The group commit over `writeDb`, when the process shares it with the outbox relay; else the app makes its own. */
  writes?: GroupCommit;
  log: Logger;
  /** Called after a commit that wrote outbox events (wakes the relay). */
  onEventsWritten(): void;
  /** Last known count of unsent outbox rows (kept by the relay). */
  outboxBacklog(): number;
  /**
   * Broker, topology, relay, live-subscription and consumer checks from the
   * process wiring: reported by /readyz, never deciding it. The app adds the
   * checks that do (database, writer, outbox backlog, draining).
   */
  readiness(): Promise<ReadinessCheck[]>;
  /** True once SIGTERM came: /readyz answers 503 while connections are still taken, so a load balancer notices first. */
  draining?(): boolean;
  /** This process's metrics registry, served at /metrics; a fresh one when absent (tests). */
  metrics?: ApiMetrics;
  /** Open notification streams, fed by the broker's live subscription (server.ts); without one, streams serve the store only. */
  liveNotifications?: NotificationHub;
  /** The timeline service (src/api/timelineClient.ts): GET /users/:id/timeline asks it. */
  timeline: TimelineSource;
  /** How often an idle notification stream sends a heartbeat comment (default 15 s). */
  streamHeartbeatMs?: number;
  /** Spans of requests and their outbox writes; none (and no cost) when tracing is off. */
  tracing?: Tracing;
  /** For tests. */
  now?: () => Date;
}

export interface ApiMetrics {
  registry: Registry;
  http: HttpMetrics;
}

/** What the middleware learns about a request and hands down the chain. */
export interface ApiState {
  requestId: string;
  /** The trace of an incoming `traceparent`, else one started here; continued by the events this request emits. */
  traceId?: string;
  /** The caller's trace context (a valid `traceparent`, with its `tracestate`), passed on by the events when no span is recorded. */
  trace?: TraceHeaders;
  /** This request's server span, when tracing is on (src/api/middleware/tracing.ts). */
  span?: TracedSpan;
  /** Set by requireAuth; `handle` is the user's as of the token lookup. */
  auth?: { userId: string; tokenId: string; tokenHash: string; handle: string };
  /** The request body as received (for the Idempotency-Key request hash) and parsed. */
  rawBody?: string;
  body?: unknown;
  /** Set by the Idempotency-Key middleware; the write stores its response in the same transaction. */
  idempotency?: { caller: string; key: string; requestHash: string; notBefore: number };
}

export type ApiContext = RouterContext<ApiState>;
export type ApiMiddleware = RouterMiddleware<ApiState>;

/** AppDeps with the clock settled and writes grouped, as routes and middleware receive them. */
export type ApiDeps = AppDeps & { now(): Date; writes: GroupCommit; metrics: ApiMetrics; liveNotifications: NotificationHub };
