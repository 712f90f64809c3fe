import os from 'node:os';
import type { Channel, ConsumeMessage, MessageProperties } from 'amqplib';
import type { Knex } from 'knex';
import { decodeDelivery, type WarrenMessage } from '../domain/messages';
import { newId } from '../domain/ids';
import { claimInboxRecord } from '../db/inbox';
import { deliveryLogger, type Logger } from '../log';
import type { WorkerDefinition } from './handler';
import { ManagedChannel } from './channel';
import type { BrokerConnection } from './connection';
import { DeliveryLane } from './deliveryLane';
import type { ConfirmPublisher, PublishRequest } from './publisher';
import { decideFailure, errorText, failureHeaders, previousAttempts, type DelayStep, type ParkKind } from './retry';
import { RETURN_EXCHANGE } from './topology';

export interface QueueConsumerOptions {
  /** The consume-only connection; retries and parks go out through `publisher`. */
  connection: BrokerConnection;
  publisher: ConfirmPublisher;
  db: Knex;
  worker: WorkerDefinition;
  prefetch: number;
  handlerTimeoutMs: number;
  maxAttempts: number;
  steps: DelayStep[];
  log: Logger;
  now?: () => Date;
}

export type Outcome = 'applied' | 'duplicate' | 'ignored' | 'retried' | 'parked';

/** `ready`: consuming, and able to retry and park (a worker's /readyz). */
export interface ConsumerStatus {
  consuming: boolean;
  ready: boolean;
  detail: string;
}

export class HandlerTimeoutError extends Error {
  constructor(ms: number) {
    super(`handler did not finish within ${ms} ms; abandoned`);
    this.name = 'HandlerTimeoutError';
  }
}

let consumerSeq = 0;

/** A retry or park the broker refuses is tried again at most this far apart. */
const MAX_REPUBLISH_DELAY_MS = 10_000;

/**
 * The one place where a delivery is handled and acknowledged, for every
 * worker. Invariants:
 * - the ack is sent only after the effect (and its inbox record) committed,
 *   or after the retry/park copy was confirmed by the broker;
 * - the ack goes to the channel the delivery arrived on; if that channel has
 *   closed, nothing is acked (the broker has requeued the message): delivery
 *   tags restart at 1 on every channel, so a stale tag would ack another message;
 * - a redelivered message runs alone (src/broker/deliveryLane.ts), so a
 *   message that crashes the process does not take its neighbours' delivery
 *   counts up with its own.
 */
export class QueueConsumer {
  private readonly channel: ManagedChannel<Channel>;
  private readonly closedChannels = new WeakSet<Channel>();
  private readonly lanes = new Map<Channel, DeliveryLane>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Retry/park copies not confirmed yet, each holding its original unacked: why each failed last. */
  private readonly failingCopies = new Map<symbol, string>();
  private cancelledByBroker = false;
  private stopping = false;
  readonly counts: Record<Outcome | 'stale' | 'redelivered', number> = { applied: 0, duplicate: 0, ignored: 0, retried: 0, parked: 0, stale: 0, redelivered: 0 };

  constructor(private readonly opts: QueueConsumerOptions) {
    const { worker } = opts;
    // The queue's own bindings, and the route its retries come back by.
    const bindings = [...worker.bindings, { exchange: RETURN_EXCHANGE, routingKey: worker.queue }];
    this.channel = new ManagedChannel<Channel>({
      connection: opts.connection,
      confirm: false,
      name: `consumer ${worker.queue}`,
      log: opts.log,
      setup: async (ch) => {
        if (this.stopping) throw new Error('consumer stopping');
        await ch.checkQueue(worker.queue);
        // A publisher cannot see a fanout subscriber's missing binding, nor an
        // operator's re-created queue, so the subscriber re-binds its own
        // queue on every (re)connect.
        for (const b of bindings) await ch.bindQueue(worker.queue, b.exchange, b.routingKey);
        const lane = new DeliveryLane({
          channel: ch,
          queue: worker.queue,
          prefetch: opts.prefetch,
          consumerTag: () => `warren ${worker.name} ${os.hostname()} pid ${process.pid} #${++consumerSeq}`,
          run: (msg, handled) => this.track(ch, msg, handled),
          onCancelled: () => this.onCancelled(ch),
          log: opts.log,
        });
        this.lanes.set(ch, lane);
        await lane.start();
        this.cancelledByBroker = false;
      },
      onClose: (ch) => {
        this.closedChannels.add(ch);
        this.lanes.get(ch)?.close();
        this.lanes.delete(ch);
      },
    });
  }

  /** Whether this consumer is subscribed right now and can retry and park, and if not, why. */
  status(): ConsumerStatus {
    const { queue } = this.opts.worker;
    if (this.stopping) return { consuming: false, ready: false, detail: `stopping: no longer consuming ${queue}` };
    const ch = this.channel.current();
    const lane = ch && this.lanes.get(ch);
    if (!lane?.active()) {
      const why = this.channel.failure() || (this.opts.connection.isConnected() ? 'subscribing' : 'broker not connected');
      const cancelled = this.cancelledByBroker ? 'cancelled by the broker; resubscribing: ' : '';
      return { consuming: false, ready: false, detail: `not consuming ${queue}: ${cancelled}${why}` };
    }
    if (this.failingCopies.size > 0) {
      const why = [...new Set(this.failingCopies.values())].join('; ');
      return { consuming: true, ready: false, detail: `cannot retry or park (${this.failingCopies.size} message(s) held unacked): ${why}` };
    }
    if (!this.opts.publisher.isReady()) return { consuming: true, ready: false, detail: 'cannot retry or park: the publishing connection is down or blocked' };
    const alone = lane.isolatingCount();
    return { consuming: true, ready: true, detail: alone ? `consuming ${queue}; ${alone} redelivered message(s) running one at a time` : `consuming ${queue}` };
  }

  /** The broker cancelled us (queue deleted): reopen, which re-subscribes once the queue is back and reports not ready until then. */
  private onCancelled(ch: Channel): void {
    this.cancelledByBroker = true;
    this.opts.log.warn({ queue: this.opts.worker.queue }, 'consumer cancelled by the broker; resubscribing');
    ch.close().catch(() => undefined);
  }

  private track(ch: Channel, msg: ConsumeMessage, handled: () => void): Promise<void> {
    if (msg.fields.redelivered) this.counts.redelivered++;
    const job = this.handleDelivery(ch, msg, handled).catch((err) =>
      this.opts.log.error({ err: (err as Error).message, queue: this.opts.worker.queue }, 'delivery left unacked'),
    );
    this.inFlight.add(job);
    void job.finally(() => this.inFlight.delete(job));
    return job;
  }

  private async handleDelivery(ch: Channel, msg: ConsumeMessage, handled: () => void): Promise<void> {
    const outcome = await this.process(ch, msg, handled);
    if (outcome === undefined) return; // the channel closed while a park was pending: the broker requeued it
    this.counts[outcome]++;
    this.ack(ch, msg, outcome);
  }

  /**
   * Decides and carries out what happens to one delivery; resolves when it
   * may be acked. `handled` is called once the handler is done with it.
   */
  async process(ch: Channel, msg: ConsumeMessage, handled: () => void = () => undefined): Promise<Outcome | undefined> {
    const { worker } = this.opts;
    const log = deliveryLogger(this.opts.log, msg.properties); // lines about this delivery carry its request id
    const attempt = previousAttempts(msg.properties.headers ?? {}) + 1;
    let message: WarrenMessage;
    try {
      const decoded = decodeDelivery(rawDelivery(msg), worker.handles);
      if (decoded.kind === 'unhandled') return 'ignored';
      message = decoded.message;
    } catch (err) {
      handled();
      return this.fail(ch, msg, err, attempt);
    }
    try {
      const applied = await this.applyOnce(message, log);
      return applied ? 'applied' : 'duplicate';
    } catch (err) {
      handled();
      log.warn({ messageId: message.messageId, type: message.type, attempt, err: errorText(err) }, 'handler failed');
      return this.fail(ch, msg, err, attempt);
    }
  }

  /** Runs the handler and writes the inbox record in one transaction; false if already applied. */
  private async applyOnce(message: WarrenMessage, log: Logger): Promise<boolean> {
    const { db, worker, handlerTimeoutMs } = this.opts;
    const trx = await db.transaction();
    const afterCommit: (() => void | Promise<void>)[] = [];
    let timer: NodeJS.Timeout | undefined;
    try {
      const work = (async () => {
        if (!(await claimInboxRecord(trx, worker.name, message.messageId))) return false;
        await worker.handle(message as never, trx, { log, now: this.now, afterCommit: (fn) => afterCommit.push(fn) });
        return true;
      })();
      work.catch(() => undefined); // an abandoned handler's late failure is expected
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new HandlerTimeoutError(handlerTimeoutMs)), handlerTimeoutMs);
      });
      const applied = await Promise.race([work, timeout]);
      await trx.commit();
      for (const fn of afterCommit) {
        void Promise.resolve().then(fn).catch((err) => log.warn({ messageId: message.messageId, err: errorText(err) }, 'after-commit callback failed'));
      }
      return applied;
    } catch (err) {
      // An abandoned handler may still be inside a statement; the database's
      // own statement timeout (src/db/knex.ts) bounds how long this waits, so
      // the connection goes back to the pool idle, never mid-query.
      if (!trx.isCompleted()) await trx.rollback().catch(() => undefined);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private readonly now = (): Date => (this.opts.now ? this.opts.now() : new Date());

  /** Retries with backoff or parks; the original stays unacked until the copy is confirmed. */
  private async fail(ch: Channel, msg: ConsumeMessage, error: unknown, attempt: number): Promise<Outcome | undefined> {
    const { worker, maxAttempts, steps } = this.opts;
    const log = deliveryLogger(this.opts.log, msg.properties);
    const decision = decideFailure(error, attempt, maxAttempts, steps);
    const record = { error, attempt, queue: worker.queue, exchange: msg.fields.exchange, routingKey: msg.fields.routingKey, now: this.now() };
    const kind: ParkKind | undefined = decision.action === 'park' ? decision.kind : undefined;
    const request: PublishRequest = {
      exchange: decision.action === 'retry' ? decision.step.exchange : 'warren.dlx',
      routingKey: worker.queue,
      content: msg.content,
      properties: copyProperties(msg.properties, failureHeaders(msg.properties.headers ?? {}, record, kind)),
    };
    const delivered = await this.publishUntilConfirmed(ch, request);
    if (!delivered) return undefined;
    if (decision.action === 'retry') {
      log.info({ messageId: msg.properties.messageId, attempt, delay: decision.step.name }, 'retry scheduled');
      return 'retried';
    }
    log.warn({ messageId: msg.properties.messageId, attempt, kind, err: errorText(error) }, 'message parked');
    return 'parked';
  }

  /**
   * A retry or park that is not confirmed (returned, nacked, broker away)
   * leaves the original unacked and is tried again while its channel lives;
   * until then the consumer reports it cannot retry or park.
   */
  private async publishUntilConfirmed(ch: Channel, request: PublishRequest): Promise<boolean> {
    const attempt = Symbol(request.properties.messageId);
    let delay = 500;
    try {
      for (;;) {
        if (this.closedChannels.has(ch)) return false;
        try {
          await this.opts.publisher.publish(request);
          return true;
        } catch (err) {
          this.failingCopies.set(attempt, `${request.exchange}: ${(err as Error).message}`);
          deliveryLogger(this.opts.log, request.properties).error({ exchange: request.exchange, routingKey: request.routingKey, err: (err as Error).message }, 'retry/park publish failed; original kept unacked');
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, MAX_REPUBLISH_DELAY_MS);
        }
      }
    } finally {
      this.failingCopies.delete(attempt);
    }
  }

  private ack(ch: Channel, msg: ConsumeMessage, outcome: Outcome): void {
    if (this.closedChannels.has(ch)) {
      this.counts.stale++;
      deliveryLogger(this.opts.log, msg.properties).warn({ messageId: msg.properties.messageId, outcome }, 'stale delivery: its channel closed, the broker redelivers it');
      return;
    }
    try {
      ch.ack(msg);
    } catch (err) {
      this.counts.stale++;
      deliveryLogger(this.opts.log, msg.properties).warn({ messageId: msg.properties.messageId, err: (err as Error).message }, 'stale delivery: ack failed');
    }
  }

  /** Stops taking deliveries, finishes what it holds (bounded), then closes. */
  async stop(timeoutMs: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const ch = this.channel.current();
    const lane = ch && this.lanes.get(ch);
    await lane?.stop().catch(() => undefined);
    const drained = (async () => {
      await lane?.idle();
      await Promise.all([...this.inFlight]);
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([drained, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    await this.channel.close();
  }
}

function rawDelivery(msg: ConsumeMessage) {
  const p = msg.properties;
  return {
    content: msg.content,
    contentType: p.contentType as string | undefined,
    contentEncoding: p.contentEncoding as string | undefined,
    messageId: p.messageId as string | undefined,
    type: p.type as string | undefined,
    correlationId: p.correlationId as string | undefined,
    timestamp: p.timestamp as number | undefined,
    headers: (p.headers ?? {}) as Record<string, unknown>,
  };
}

/** The original's properties on its retry or park copy (never user_id or a per-message TTL). */
function copyProperties(p: MessageProperties, headers: Record<string, unknown>): PublishRequest['properties'] {
  const props: PublishRequest['properties'] = {
    // A message parked for lacking a message_id gets one, so its park can be confirmed.
    messageId: (p.messageId as string | undefined) ?? `missing-${newId()}`,
    headers,
  };
  if (p.contentType) props.contentType = p.contentType as string;
  if (p.contentEncoding) props.contentEncoding = p.contentEncoding as string;
  if (p.type) props.type = p.type as string;
  if (p.correlationId) props.correlationId = p.correlationId as string;
  if (p.timestamp) props.timestamp = p.timestamp as number;
  if (p.appId) props.appId = p.appId as string;
  if (p.replyTo) props.replyTo = p.replyTo as string;
  return props;
}
