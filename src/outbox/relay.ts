import os from 'node:os';
import type { Knex } from 'knex';
import { APP_ID } from '../domain/messages';
import { claimBatch, countBacklog, markSent, pruneSent, releaseClaims, type OutboxRow } from './store';
import type { Logger } from '../log';
import type { ConfirmPublisher, PublishRequest } from '../broker/publisher';
import type { TraceHeaders } from '../observability/traceContext';
import type { TracedSpan, Tracing } from '../observability/tracing';

/** Runs a write in a transaction and resolves once it is committed. */
export type WriteRunner = <T>(work: (tx: Knex.Transaction) => Promise<T>) => Promise<T>;

export interface RelayOptions {
  db: Knex;
  /**
   * How the relay's writes (claims, marks, releases, prunes) are committed:
   * the API's group commit, so that they share the requests' durable commits
   * instead of each paying its own on the store's one writer. Default: a
   * transaction of their own on `db`.
   */
  writes?: WriteRunner;
  publisher: ConfirmPublisher;
  log: Logger;
  batchSize: number;
  pollIntervalMs: number;
  claimTimeoutMs: number;
  retainSentMs: number;
  /** Told of each batch's publish outcomes (null = confirmed) as they settle: relay lag metrics. */
  observe?: (rows: readonly OutboxRow[], outcomes: readonly (Error | null)[]) => void;
  /** How often the backlog is counted; in between it is the last count less what was sent since. */
  countEveryMs?: number;
  /**
   * Publishing also waits for this (the API's start-up topology check); the
   * backlog is counted from the start all the same, so `outbox.maxBacklog`
   * holds while the broker has not been reached yet.
   */
  mayPublish?: () => boolean;
  /** A producer span per row published, under the context stored with the row; none when tracing is off. */
  tracing?: Tracing;
}

const COUNT_EVERY_MS = 1000;

interface BatchOutcome {
  sent: number;
  failed: number;
}

/**
 * Relays the outbox to RabbitMQ. Several API processes may relay the same
 * outbox: each claims a batch with one conditional UPDATE, so a row is not
 * published twice in normal operation. A row is marked sent only after its
 * confirm arrived and no return did; otherwise its claim is released and it
 * is tried again (the broker's outage delays events, it never drops them).
 * While a batch's confirms are on their way the next batch is claimed and
 * published, so the database and the broker work at the same time.
 */
export class OutboxRelay {
  readonly relayId = `${os.hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  private running = false;
  private loop: Promise<void> | undefined;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private backlog = 0;
  private lastError = '';
  private lastPrune = 0;
  private lastCount = 0;
  /** Marks of published batches not committed yet. */
  private readonly marking = new Set<Promise<void>>();
  readonly counts = { sent: 0, failed: 0 };

  private readonly write: WriteRunner;

  constructor(private readonly opts: RelayOptions) {
    this.write = opts.writes ?? ((work) => opts.db.transaction(work));
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Called after a commit that wrote events, so they go out without waiting for the poll. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Unsent rows as of the last count (at most `countEveryMs` old), less those sent since. */
  pending(): number {
    return this.backlog;
  }

  status(): { ok: boolean; detail: string } {
    return this.lastError ? { ok: false, detail: `outbox relay: ${this.lastError}` } : { ok: true, detail: `outbox backlog ${this.backlog}` };
  }

  private async run(): Promise<void> {
    const { log, pollIntervalMs } = this.opts;
    while (this.running) {
      let relayed = 0;
      try {
        await this.countNow();
        if (this.opts.publisher.isReady() && (this.opts.mayPublish?.() ?? true)) relayed = await this.relayWhileFull();
        await this.pruneNow();
      } catch (err) {
        const message = (err as Error).message;
        if (message !== this.lastError) log.error({ err }, 'outbox relay cycle failed');
        this.lastError = message;
      }
      // A full batch means more is waiting: go again at once.
      if (relayed < this.opts.batchSize) await this.sleep(pollIntervalMs);
    }
  }

  /**
   * Counting the backlog scans every unsent row: it is done at most once per
   * `countEveryMs`, not once per batch.
   */
  private async countNow(): Promise<void> {
    if (Date.now() - this.lastCount < (this.opts.countEveryMs ?? COUNT_EVERY_MS)) return;
    this.lastCount = Date.now();
    this.backlog = await countBacklog(this.opts.db);
    if (this.backlog === 0) this.lastError = '';
  }

  /**
   * Claims and publishes batches while they come full. The next batch is
   * claimed and published while the current one waits for its confirms (at
   * most two batches unconfirmed). Returns how many rows were sent, 0 when a
   * publish failed (the broker is in trouble: wait for the next cycle).
   */
  private async relayWhileFull(): Promise<number> {
    const { batchSize } = this.opts;
    const inFlight: Promise<BatchOutcome>[] = [];
    let total = 0;
    let failed = false;
    const count = (outcome: BatchOutcome) => {
      total += outcome.sent;
      if (outcome.failed > 0) failed = true;
    };
    let error: unknown;
    try {
      let rows = await this.claim();
      while (rows.length > 0) {
        const settling = this.publishBatch(rows);
        settling.catch(() => undefined); // awaited below; this only keeps it from counting as unhandled meanwhile
        inFlight.push(settling);
        const full = rows.length === batchSize;
        if (inFlight.length > 1) count(await inFlight.shift()!);
        if (failed || !full || !this.running) break;
        rows = await this.claim();
      }
    } catch (err) {
      error = err;
    }
    // Every batch published is settled (marked sent or released) before the cycle ends.
    for (const outcome of await Promise.allSettled(inFlight)) {
      if (outcome.status === 'fulfilled') count(outcome.value);
      else error ??= outcome.reason;
    }
    if (error) throw error;
    return failed ? 0 : total;
  }

  private claim(): Promise<OutboxRow[]> {
    const { batchSize, claimTimeoutMs } = this.opts;
    // The rows come back once the claim is committed: only then are they published.
    return this.write((tx) => claimBatch(tx, this.relayId, batchSize, claimTimeoutMs));
  }

  /**
   * Publishes one claimed batch with pipelined confirms and resolves once
   * they are in; marking what was confirmed (and releasing what was not) is
   * committed after that without holding the relay up: the rows stay
   * claimed meanwhile, so no claim takes them again.
   */
  private async publishBatch(rows: OutboxRow[]): Promise<BatchOutcome> {
    const { publisher, log } = this.opts;
    const { tracing } = this.opts;
    const outcomes = tracing ? await publishTraced(publisher, tracing, rows) : await publisher.publishAll(rows.map((row) => toPublishRequest(row)));
    this.opts.observe?.(rows, outcomes);
    const sent: number[] = [];
    const failed: number[] = [];
    let firstError = '';
    outcomes.forEach((err, i) => {
      if (err) {
        failed.push(rows[i]!.seq);
        firstError ||= err.message;
      } else sent.push(rows[i]!.seq);
    });
    if (failed.length) {
      log.warn({ failed: failed.length, sent: sent.length, err: firstError }, 'outbox rows not delivered; kept for another try');
      this.lastError = firstError;
    } else {
      this.lastError = '';
    }
    this.backlog = Math.max(0, this.backlog - sent.length);
    const marking = this.write(async (tx) => {
      await markSent(tx, this.relayId, sent);
      if (failed.length) await releaseClaims(tx, this.relayId, failed, firstError);
    }).then(
      () => {
        this.counts.sent += sent.length;
        this.counts.failed += failed.length;
      },
      (err: Error) => {
        // Published but not marked: the claim times out and the rows go again (consumers drop the duplicates).
        log.error({ err, rows: rows.length }, 'marking relayed outbox rows failed');
        this.lastError = err.message;
      },
    );
    this.marking.add(marking);
    void marking.finally(() => this.marking.delete(marking));
    return { sent: sent.length, failed: failed.length };
  }

  private async pruneNow(): Promise<void> {
    if (Date.now() - this.lastPrune < 60_000) return;
    this.lastPrune = Date.now();
    const pruned = await this.write((tx) => pruneSent(tx, this.opts.retainSentMs));
    if (pruned) this.opts.log.debug({ pruned }, 'pruned sent outbox rows');
  }

  /**
   * Waits for the poll interval or a wake-up, whichever comes first. A
   * wake-up while no sleep is under way is kept for the next one; each
   * sleep forgets its own wake-up function when it ends, so a sleep that
   * ended by its timer can never swallow a later wake() (its event would
   * otherwise wait out a whole poll interval).
   */
  private sleep(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wakeUp === done) this.wakeUp = undefined;
        this.woken = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  /** Stops after the batch in hand is settled and every mark committed. */
  async stop(): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    await this.loop;
    await Promise.all(this.marking);
  }
}

/**
 * Publishes rows each under a producer span, child of the context the row
 * was written with (its traceparent and tracestate, kept in the outbox, so
 * a relay that restarted continues the same trace). The message carries the
 * span's own context, with the sampled flag its sampler decided; the span
 * ends with the confirm, failed when the row was not delivered.
 */
async function publishTraced(publisher: ConfirmPublisher, tracing: Tracing, rows: OutboxRow[]): Promise<(Error | null)[]> {
  const spans: TracedSpan[] = [];
  const requests = rows.map((row) => {
    const span = tracing.publish({
      exchange: row.exchange,
      routingKey: row.routing_key,
      messageId: row.message_id,
      type: row.type,
      traceparent: row.traceparent,
      tracestate: row.tracestate,
    });
    spans.push(span);
    return toPublishRequest(row, span.headers());
  });
  try {
    const outcomes = await publisher.publishAll(requests);
    outcomes.forEach((err, i) => spans[i]!.end(err ?? undefined));
    return outcomes;
  } catch (err) {
    for (const span of spans) span.end(err);
    throw err;
  }
}

/** The publish of a row: its properties, and its trace context (the row's own, or the producer span's that replaces it). */
export function toPublishRequest(row: OutboxRow, trace?: TraceHeaders): PublishRequest {
  const tracestate = trace ? trace.tracestate : row.tracestate;
  return {
    exchange: row.exchange,
    routingKey: row.routing_key,
    content: Buffer.from(row.payload, 'utf8'),
    properties: {
      messageId: row.message_id,
      type: row.type,
      contentType: 'application/json',
      timestamp: Math.floor(Number(row.created_at) / 1000),
      appId: APP_ID,
      ...(row.correlation_id ? { correlationId: row.correlation_id } : {}),
      headers: { 'x-schema-version': row.schema_version, traceparent: trace?.traceparent ?? row.traceparent, ...(tracestate ? { tracestate } : {}) },
    },
  };
}
