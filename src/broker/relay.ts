import os from 'node:os';
import type { Knex } from 'knex';
import { APP_ID } from '../domain/messages';
import { claimBatch, countBacklog, markSent, pruneSent, releaseClaims, type OutboxRow } from '../db/outbox';
import type { Logger } from '../log';
import type { ConfirmPublisher, PublishRequest } from './publisher';

export interface RelayOptions {
  db: Knex;
  publisher: ConfirmPublisher;
  log: Logger;
  batchSize: number;
  pollIntervalMs: number;
  claimTimeoutMs: number;
  retainSentMs: number;
  /** Told of each batch's publish outcomes (null = confirmed) as they settle: relay lag metrics. */
  observe?: (rows: readonly OutboxRow[], outcomes: readonly (Error | null)[]) => void;
}

/**
 * Relays the outbox to RabbitMQ. Several API processes may relay the same
 * outbox: each claims a batch with one conditional UPDATE, so a row is not
 * published twice in normal operation. A row is marked sent only after its
 * confirm arrived and no return did; otherwise its claim is released and it
 * is tried again (the broker's outage delays events, it never drops them).
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
  readonly counts = { sent: 0, failed: 0 };

  constructor(private readonly opts: RelayOptions) {}

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

  /** Unsent rows as of the last count (refreshed every cycle). */
  pending(): number {
    return this.backlog;
  }

  status(): { ok: boolean; detail: string } {
    return this.lastError ? { ok: false, detail: `outbox relay: ${this.lastError}` } : { ok: true, detail: `outbox backlog ${this.backlog}` };
  }

  private async run(): Promise<void> {
    const { db, log, pollIntervalMs } = this.opts;
    while (this.running) {
      let relayed = 0;
      try {
        this.backlog = await countBacklog(db);
        if (this.backlog === 0) this.lastError = '';
        if (this.backlog > 0 && this.opts.publisher.isReady()) relayed = await this.relayBatch();
        await this.pruneNow();
      } catch (err) {
        const message = (err as Error).message;
        if (message !== this.lastError) log.error({ err: message }, 'outbox relay cycle failed');
        this.lastError = message;
      }
      // A full batch means more is waiting: go again at once.
      if (relayed < this.opts.batchSize) await this.sleep(pollIntervalMs);
    }
  }

  /** Publishes one claimed batch with pipelined confirms; returns how many were sent. */
  private async relayBatch(): Promise<number> {
    const { db, publisher, log, batchSize, claimTimeoutMs } = this.opts;
    const rows = await claimBatch(db, this.relayId, batchSize, claimTimeoutMs);
    if (rows.length === 0) return 0;
    const outcomes = await publisher.publishAll(rows.map(toPublishRequest));
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
    await markSent(db, this.relayId, sent);
    if (failed.length) {
      await releaseClaims(db, this.relayId, failed, firstError);
      log.warn({ failed: failed.length, sent: sent.length, err: firstError }, 'outbox rows not delivered; kept for another try');
      this.lastError = firstError;
    } else {
      this.lastError = '';
    }
    this.counts.sent += sent.length;
    this.counts.failed += failed.length;
    this.backlog = Math.max(0, this.backlog - sent.length);
    return failed.length ? 0 : sent.length;
  }

  private async pruneNow(): Promise<void> {
    if (Date.now() - this.lastPrune < 60_000) return;
    this.lastPrune = Date.now();
    const pruned = await pruneSent(this.opts.db, this.opts.retainSentMs);
    if (pruned) this.opts.log.debug({ pruned }, 'pruned sent outbox rows');
  }

  private sleep(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeUp = () => {
        this.wakeUp = undefined;
        this.woken = false;
        done();
      };
    });
  }

  /** Stops after the batch in hand is settled. */
  async stop(): Promise<void> {
    this.running = false;
    this.wakeUp?.();
    await this.loop;
  }
}

export function toPublishRequest(row: OutboxRow): PublishRequest {
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
      headers: { 'x-schema-version': row.schema_version, traceparent: row.traceparent },
    },
  };
}
