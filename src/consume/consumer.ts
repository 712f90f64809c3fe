import os from 'node:os';
import type { Channel, ConsumeMessage } from 'amqplib';
import type { Knex } from 'knex';
import { PermanentError } from '../domain/errors';
import { decodeDelivery, type WarrenMessage } from '../domain/messages';
import { newId } from '../domain/ids';
import { deliveryLogger, type Logger } from '../log';
import type { WorkerDefinition } from './handler';
import { ChannelAcks } from './acks';
import { ManagedChannel } from '../broker/channel';
import type { BrokerConnection } from '../broker/connection';
import { DeliveryLane, type BatchDelivery } from './deliveryLane';
import { applyInOneTransaction, MessageFailedError, type CommittedEffects } from './effectTransaction';
import { TransientError } from '../domain/errors';
import { foreignHeaderProblem, trustedHeaders } from './foreignHeaders';
import { copiedProperties, PublishError, type ConfirmPublisher, type PublishRequest } from '../broker/publisher';
import { decideFailure, errorText, failureHeaders, previousAttempts, withOnlyWarrenHeaders, type DelayStep, type ParkKind } from './retry';
import { RETURN_EXCHANGE } from '../topology/definitions';

export interface QueueConsumerOptions {
  /** The consume-only connection; retries and parks go out through `publisher`. */
  connection: BrokerConnection;
  publisher: ConfirmPublisher;
  db: Knex;
  worker: WorkerDefinition;
  prefetch: number;
  /** Most deliveries applied in one transaction; the prefetch by default. */
  batchSize?: number;
  /** Bounds one transaction, whether it holds one message or a batch. */
  handlerTimeoutMs: number;
  /**
   * A delivery of a batch that failed is acked, or sent to its retry, within
   * about this long of its arrival: it runs again alone only while that run
   * (up to `handlerTimeoutMs`) still ends in time. Keep it well under the
   * broker's consumer timeout (30 min), which closes the channel of a
   * delivery held longer. 5 minutes by default.
   */
  batchDeadlineMs?: number;
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

export { HandlerTimeoutError } from './effectTransaction';

let consumerSeq = 0;

/** A retry or park the broker refuses is tried again at most this far apart. */
const MAX_REPUBLISH_DELAY_MS = 10_000;

const DEFAULT_BATCH_DEADLINE_MS = 5 * 60 * 1000;

/**
 * The one place where a delivery is handled and acknowledged, for every
 * worker. Invariants:
 * - the ack is sent only after the effect (and its inbox record) committed,
 *   or after the retry/park copy was confirmed by the broker;
 * - first deliveries that arrive together are applied together, in one
 *   transaction, and acked together once it committed; if it fails, nothing
 *   of it is acked and each message runs again alone, in its own
 *   transaction, so a poison message is retried or parked by itself, as
 *   long as that ends within `batchDeadlineMs` of its arrival: the others go
 *   to their retry at once, unrun, so that none is held unacked past the
 *   broker's consumer timeout;
 * - the ack goes to the channel the delivery arrived on; if that channel has
 *   closed, nothing is acked (the broker has requeued the message): delivery
 *   tags restart at 1 on every channel, so a stale tag would ack another message;
 * - a redelivered message runs alone (src/consume/deliveryLane.ts), so a
 *   message that crashes the process does not take its neighbours' delivery
 *   counts up with its own.
 */
export class QueueConsumer {
  private readonly channel: ManagedChannel<Channel>;
  private readonly closedChannels = new WeakSet<Channel>();
  private readonly lanes = new Map<Channel, DeliveryLane>();
  private readonly acks = new WeakMap<Channel, ChannelAcks>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Retry/park copies not confirmed yet, each holding its original unacked: why each failed last. */
  private readonly failingCopies = new Map<symbol, string>();
  /** When each delivery reached its lane: the deadline of a failed batch's fallback counts from there. */
  private readonly arrivals = new WeakMap<ConsumeMessage, number>();
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
        const acks = new ChannelAcks(ch);
        this.acks.set(ch, acks);
        const lane = new DeliveryLane({
          channel: ch,
          queue: worker.queue,
          prefetch: opts.prefetch,
          batchSize: opts.batchSize ?? opts.prefetch,
          consumerTag: () => `warren ${worker.name} ${os.hostname()} pid ${process.pid} #${++consumerSeq}`,
          received: (msg) => {
            acks.received(msg);
            this.arrivals.set(msg, Date.now());
          },
          run: (msg, handled) => this.track(ch, msg, handled),
          runBatch: (batch) => this.trackBatch(ch, batch),
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
    return this.keep(this.handleDelivery(ch, msg, handled));
  }

  private trackBatch(ch: Channel, batch: BatchDelivery[]): Promise<void> {
    for (const { msg } of batch) if (msg.fields.redelivered) this.counts.redelivered++;
    return this.keep(this.processBatch(ch, batch));
  }

  /** Until it is over, `stop` waits for it; it never rejects. */
  private keep(work: Promise<void>): Promise<void> {
    const job = work.catch((err) => this.opts.log.error({ err: (err as Error).message, queue: this.opts.worker.queue }, 'delivery left unacked'));
    this.inFlight.add(job);
    void job.finally(() => this.inFlight.delete(job));
    return job;
  }

  private async handleDelivery(ch: Channel, msg: ConsumeMessage, handled: () => void): Promise<void> {
    const outcome = await this.process(ch, msg, handled);
    if (outcome === undefined) return; // the channel closed while a park was pending: the broker requeued it
    this.counts[outcome]++;
    this.ack(ch, [msg], outcome);
  }

  /**
   * Decides and carries out what happens to one delivery, in a transaction
   * of its own; resolves when it may be acked. `handled` is called once the
   * handler is done with it.
   */
  async process(ch: Channel, msg: ConsumeMessage, handled: () => void = () => undefined): Promise<Outcome | undefined> {
    const decoded = this.decode(ch, msg);
    if (decoded instanceof Promise) {
      handled();
      return decoded;
    }
    if (decoded === 'ignored') return 'ignored';
    try {
      const effects = await this.apply([decoded], false);
      this.runAfterCommit(effects);
      return effects.applied.has(decoded.messageId) ? 'applied' : 'duplicate';
    } catch (err) {
      handled();
      return this.handlerFailed(ch, msg, decoded, err);
    }
  }

  /**
   * First deliveries that arrived together. Those that cannot be decoded are
   * parked one by one as before; the others are applied in ONE transaction
   * and acked together after it committed. If it fails, nothing of it is
   * acked: a message whose own handler failed (or the only one) is retried
   * or parked with that error, the others run again one at a time
   * (`process`), so they are applied exactly once and a poison message
   * fails alone; one whose run alone would not end within
   * `batchDeadlineMs` of its arrival is sent to its retry instead, unrun
   * (an attempt), and acked once that copy is confirmed.
   */
  async processBatch(ch: Channel, batch: BatchDelivery[]): Promise<void> {
    const alone: Promise<void>[] = [];
    const ignored: BatchDelivery[] = [];
    const valid: { delivery: BatchDelivery; message: WarrenMessage }[] = [];
    for (const delivery of batch) {
      const decoded = this.decode(ch, delivery.msg);
      if (decoded instanceof Promise) {
        delivery.handled();
        alone.push(this.settleAlone(ch, delivery, decoded));
      } else if (decoded === 'ignored') {
        ignored.push(delivery);
      } else {
        valid.push({ delivery, message: decoded });
      }
    }
    // Ignored messages change nothing: they wait for no transaction.
    this.settle(ch, ignored.map((d) => ({ delivery: d, outcome: 'ignored' as const })));
    if (valid.length > 0) {
      let effects: CommittedEffects | undefined;
      let failure: unknown;
      try {
        effects = await this.apply(valid.map((v) => v.message), true);
      } catch (err) {
        failure = err;
      }
      if (effects) {
        this.opts.log.debug({ messages: valid.length, applied: effects.applied.size }, 'batch committed');
        this.runAfterCommit(effects);
        // The first delivery of an id applied it; a second one in the same batch is a duplicate.
        const outcomes = valid.map((v) => ({ delivery: v.delivery, outcome: effects.applied.delete(v.message.messageId) ? ('applied' as const) : ('duplicate' as const) }));
        this.settle(ch, outcomes);
      } else {
        // A batch of one already ran alone.
        const culprit = failure instanceof MessageFailedError ? failure.culprit : valid.length === 1 ? valid[0]!.message : undefined;
        if (valid.length > 1) this.opts.log.warn({ messages: valid.length, culprit: culprit?.messageId, err: errorText(failure) }, 'batch failed; its messages run again one at a time');
        // One after another (not waiting for retry or park copies): alone in the store too, so no two of them contend for a row.
        let unrun = 0;
        for (const { delivery, message } of valid) {
          if (message === culprit) {
            delivery.handled();
            alone.push(this.settleAlone(ch, delivery, this.handlerFailed(ch, delivery.msg, message, failure)));
            continue;
          }
          // Every run may take the handler timeout (a locked store): rerunning a whole prefetch
          // would hold the last ones unacked past the broker's consumer timeout, which closes
          // the channel and hands them all back. What cannot run in time goes to its retry now.
          if (!this.canRunAlone(delivery.msg)) {
            unrun++;
            delivery.handled();
            alone.push(this.settleAlone(ch, delivery, this.fail(ch, delivery.msg, this.outOfTime(failure), attemptOf(delivery.msg))));
            continue;
          }
          let handlerDone!: () => void;
          const handled = new Promise<void>((resolve) => (handlerDone = resolve));
          const run = this.settleAlone(ch, delivery, this.process(ch, delivery.msg, () => {
            delivery.handled();
            handlerDone();
          }));
          alone.push(run);
          await Promise.race([handled, run]);
        }
        if (unrun > 0) this.opts.log.warn({ messages: unrun, batchDeadlineMs: this.batchDeadlineMs }, 'failed batch out of time: messages sent to their retry without running alone');
      }
    }
    await Promise.all(alone);
  }

  private get batchDeadlineMs(): number {
    return this.opts.batchDeadlineMs ?? DEFAULT_BATCH_DEADLINE_MS;
  }

  /** Whether a run alone, up to the handler timeout, would end within the deadline counted from the delivery's arrival. */
  private canRunAlone(msg: ConsumeMessage): boolean {
    const arrived = this.arrivals.get(msg) ?? Date.now();
    return Date.now() + this.opts.handlerTimeoutMs <= arrived + this.batchDeadlineMs;
  }

  /** Transient whatever failed the batch: the message itself was never tried alone. */
  private outOfTime(failure: unknown): TransientError {
    return new TransientError(`not run: its batch failed and a run alone would not end within ${this.batchDeadlineMs} ms of its delivery (${errorText(failure)})`);
  }

  /** A message decoded for this worker, 'ignored' (a type it does not handle), or its park under way. */
  private decode(ch: Channel, msg: ConsumeMessage): WarrenMessage | 'ignored' | Promise<Outcome | undefined> {
    try {
      const decoded = decodeDelivery(rawDelivery(msg), this.opts.worker.handles);
      if (decoded.kind === 'unhandled') return 'ignored';
      // Its retry or park copy could not carry such headers: parked now, with them left out.
      const headerProblem = foreignHeaderProblem(msg.properties.headers ?? {});
      if (headerProblem) throw new PermanentError(headerProblem);
      return decoded.message;
    } catch (err) {
      return this.fail(ch, msg, err, attemptOf(msg));
    }
  }

  private handlerFailed(ch: Channel, msg: ConsumeMessage, message: WarrenMessage, failure: unknown): Promise<Outcome | undefined> {
    const err = failure instanceof MessageFailedError ? failure.error : failure;
    const attempt = attemptOf(msg);
    deliveryLogger(this.opts.log, msg.properties).warn({ messageId: message.messageId, type: message.type, attempt, err: errorText(err) }, 'handler failed');
    return this.fail(ch, msg, err, attempt);
  }

  private async settleAlone(ch: Channel, delivery: BatchDelivery, outcome: Promise<Outcome | undefined>): Promise<void> {
    try {
      const decided = await outcome;
      if (decided !== undefined) this.settle(ch, [{ delivery, outcome: decided }]);
    } finally {
      delivery.finished();
      delivery.handled();
    }
  }

  /** Counts and acks deliveries whose outcome is final (effects committed, or copies confirmed). */
  private settle(ch: Channel, decided: { delivery: BatchDelivery; outcome: Outcome }[]): void {
    if (decided.length === 0) return;
    for (const { outcome } of decided) this.counts[outcome]++;
    this.ack(
      ch,
      decided.map((d) => d.delivery.msg),
      decided.length === 1 ? decided[0]!.outcome : 'batch',
    );
    for (const { delivery } of decided) {
      delivery.finished();
      delivery.handled();
    }
  }

  /** One transaction for `messages`: the batch form of the handler when `batched` and the worker has one. */
  private apply(messages: WarrenMessage[], batched: boolean): Promise<CommittedEffects> {
    const { db, worker, handlerTimeoutMs, log } = this.opts;
    return applyInOneTransaction(messages, { db, worker, timeoutMs: handlerTimeoutMs, log, now: this.now, batched });
  }

  /** Best effort, after the commit and apart from the ack: a failing callback is logged, nothing else. */
  private runAfterCommit(effects: CommittedEffects): void {
    for (const fn of effects.afterCommit) {
      void (async () => fn())().catch((err) => this.opts.log.warn({ err: errorText(err), queue: this.opts.worker.queue }, 'after-commit callback failed'));
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
      // A message parked for lacking a message_id gets one, so its park can be confirmed.
      properties: copiedProperties(msg.properties, (msg.properties.messageId as string | undefined) ?? `missing-${newId()}`, failureHeaders(headersOf(msg), record, kind)),
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
  private async publishUntilConfirmed(ch: Channel, copy: PublishRequest): Promise<boolean> {
    let request = copy;
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
          const { messageId } = request.properties;
          deliveryLogger(this.opts.log, request.properties).error({ messageId, exchange: request.exchange, routingKey: request.routingKey, err: (err as Error).message }, 'retry/park publish failed; original kept unacked');
          // The same copy would fail the same way for ever.
          if (err instanceof PublishError && err.reason === 'unencodable') {
            request = { ...request, properties: { ...request.properties, headers: withOnlyWarrenHeaders(request.properties.headers ?? {}, err.message) } };
          }
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, MAX_REPUBLISH_DELAY_MS);
        }
      }
    } finally {
      this.failingCopies.delete(attempt);
    }
  }

  private ack(ch: Channel, msgs: ConsumeMessage[], outcome: Outcome | 'batch'): void {
    const messageId = msgs.length === 1 ? msgs[0]!.properties.messageId : undefined;
    if (this.closedChannels.has(ch)) {
      this.counts.stale += msgs.length;
      this.opts.log.warn({ messageId, messages: msgs.length, outcome }, 'stale delivery: its channel closed, the broker redelivers it');
      return;
    }
    try {
      this.acks.get(ch)!.ack(msgs);
    } catch (err) {
      this.counts.stale += msgs.length;
      this.opts.log.warn({ messageId, messages: msgs.length, err: (err as Error).message }, 'stale delivery: ack failed');
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

/** Its headers, x-warren-* ones only when Warren wrote them (src/consume/foreignHeaders.ts). */
function headersOf(msg: ConsumeMessage): Record<string, unknown> {
  return trustedHeaders(msg.properties.headers ?? {}, msg.fields.exchange);
}

function attemptOf(msg: ConsumeMessage): number {
  return previousAttempts(headersOf(msg)) + 1;
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
