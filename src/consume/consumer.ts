import os from 'node:os';
import type { Channel, ConsumeMessage } from 'amqplib';
import type { Knex } from 'knex';
import { TransientError } from '../domain/errors';
import type { WarrenMessage } from '../domain/messages';
import { deliveryLogger, type Logger } from '../log';
import type { WorkerDefinition } from './handler';
import { ChannelAcks } from './acks';
import { ManagedChannel } from '../broker/channel';
import type { BrokerConnection } from '../broker/connection';
import type { ConfirmPublisher } from '../broker/publisher';
import { DeliveryLane } from './deliveryLane';
import { Delivery, type AckChannel, type DecidedDelivery, type Outcome, type Settlement } from './delivery';
import { attemptOf, decode } from './decode';
import { applyInOneTransaction, MessageFailedError, type CommittedEffects } from './effectTransaction';
import { FailurePolicy } from './failurePolicy';
import { countSettlements, emptyCounts, logSettlements, type ConsumeCounts } from './settlements';
import { errorText, type DelayStep } from './retry';
import { RETURN_EXCHANGE } from '../topology/definitions';
import type { Tracing } from '../observability/tracing';
import { ConsumeSpans } from './tracing';

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
  /** Consumer and handler spans; none (and no cost) when tracing is off. */
  tracing?: Tracing;
}

export type { Outcome } from './delivery';

/** `ready`: consuming, and able to retry and park (a worker's /readyz). */
export interface ConsumerStatus {
  consuming: boolean;
  ready: boolean;
  detail: string;
}

export { HandlerTimeoutError } from './effectTransaction';

let consumerSeq = 0;

const DEFAULT_BATCH_DEADLINE_MS = 5 * 60 * 1000;

/** Where `process` settles: no broker channel holds its delivery, so its ack reaches nothing. */
const NO_CHANNEL: AckChannel = { closed: false, received: () => undefined, ack: () => undefined };

/** A delivery decoded into a message for this worker. */
interface DecodedDelivery {
  delivery: Delivery;
  message: WarrenMessage;
}

/**
 * The one place where deliveries are handled and acknowledged, for every
 * worker. Each goes one path (`handle`), a lone one as a batch of one:
 * decoded, without side effects; the decoded ones applied in ONE
 * transaction; then each settled (src/consume/delivery.ts): acked, or
 * handed to the failure policy, which retries or parks it
 * (src/consume/failurePolicy.ts). When it runs, alone or with others, is
 * the lane's call (src/consume/deliveryLane.ts). Counts and per-delivery
 * logs listen to the settlements. Invariants:
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
 * - a redelivered message runs alone, so a message that crashes the process
 *   does not take its neighbours' delivery counts up with its own.
 */
export class QueueConsumer {
  private readonly channel: ManagedChannel<Channel>;
  /** Each open channel's lane and acks. */
  private readonly lanes = new Map<Channel, { lane: DeliveryLane; acks: ChannelAcks }>();
  /** Every delivery received and not acked or given up yet: what `stop` waits for. */
  private readonly unsettled = new Set<Delivery>();
  private readonly listeners: ((s: Settlement) => void)[] = [];
  private readonly failures: FailurePolicy;
  private cancelledByBroker = false;
  private stopping = false;
  private readonly spans: ConsumeSpans | undefined;
  /** The worker as the transaction runs it: its handler runs traced when tracing is on. */
  private readonly worker: WorkerDefinition;
  readonly counts: ConsumeCounts = emptyCounts();

  constructor(private readonly opts: QueueConsumerOptions) {
    const { worker } = opts;
    this.failures = new FailurePolicy({
      publisher: opts.publisher,
      queue: worker.queue,
      maxAttempts: opts.maxAttempts,
      steps: opts.steps,
      log: opts.log,
      now: this.now,
    });
    this.spans = opts.tracing && new ConsumeSpans(opts.tracing, worker.queue);
    this.worker = this.spans ? this.spans.handlers(worker) : worker;
    if (this.spans) this.onSettled(this.spans.settled);
    this.onSettled(countSettlements(this.counts));
    this.onSettled(logSettlements(opts.log));
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
        const lane = new DeliveryLane({
          channel: ch,
          queue: worker.queue,
          prefetch: opts.prefetch,
          batchSize: opts.batchSize ?? opts.prefetch,
          consumerTag: () => `warren ${worker.name} ${os.hostname()} pid ${process.pid} #${++consumerSeq}`,
          receive: (msg) => this.receive(msg, acks),
          run: (batch, alone) => this.handle(batch, alone),
          onCancelled: () => this.onCancelled(ch),
          log: opts.log,
        });
        this.lanes.set(ch, { lane, acks });
        await lane.start();
        this.cancelledByBroker = false;
      },
      onClose: (ch) => {
        const open = this.lanes.get(ch);
        this.lanes.delete(ch);
        // Before anything else settles: what is acked from now on would be a stale tag.
        open?.acks.close();
        open?.lane.close();
      },
    });
  }

  /** Hears every delivery as it settles (acked, stale or given up), after the counts and logs. */
  onSettled(listener: (s: Settlement) => void): void {
    this.listeners.push(listener);
  }

  /** Whether this consumer is subscribed right now and can retry and park, and if not, why. */
  status(): ConsumerStatus {
    const { queue } = this.opts.worker;
    if (this.stopping) return { consuming: false, ready: false, detail: `stopping: no longer consuming ${queue}` };
    const ch = this.channel.current();
    const lane = ch && this.lanes.get(ch)?.lane;
    if (!lane?.active()) {
      const why = this.channel.failure() || (this.opts.connection.isConnected() ? 'subscribing' : 'broker not connected');
      const cancelled = this.cancelledByBroker ? 'cancelled by the broker; resubscribing: ' : '';
      return { consuming: false, ready: false, detail: `not consuming ${queue}: ${cancelled}${why}` };
    }
    const refused = this.failures.refusals();
    if (refused.length > 0) {
      return { consuming: true, ready: false, detail: `cannot retry or park (${refused.length} message(s) held unacked): ${[...new Set(refused)].join('; ')}` };
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

  private receive(msg: ConsumeMessage, acks: ChannelAcks): Delivery {
    const delivery = new Delivery(msg, acks, this.settled);
    this.unsettled.add(delivery);
    return delivery;
  }

  private readonly settled = (s: Settlement): void => {
    this.unsettled.delete(s.delivery);
    for (const listener of this.listeners) {
      try {
        listener(s);
      } catch (err) {
        this.opts.log.warn({ err, queue: this.opts.worker.queue }, 'settlement listener failed');
      }
    }
  };

  /**
   * The one path of every delivery: decode each (pure), apply the decoded
   * ones in ONE transaction, then settle each. `alone`: one redelivery, run
   * with the worker's `handle`; else first deliveries that arrived
   * together, with `handleBatch` where the worker has one. Resolves once
   * every delivery of it is settled; never rejects.
   */
  async handle(batch: readonly Delivery[], alone: boolean): Promise<void> {
    try {
      const settling: Promise<void>[] = [];
      const ignored: Delivery[] = [];
      const valid: DecodedDelivery[] = [];
      for (const delivery of batch) {
        delivery.start();
        this.spans?.started(delivery);
        const decoded = decode(delivery.msg, this.opts.worker.handles);
        if (decoded.kind === 'message') {
          valid.push({ delivery, message: decoded.message });
          this.spans?.decoded(delivery, decoded.message);
        } else if (decoded.kind === 'ignored') ignored.push(delivery);
        else settling.push(this.failed(delivery, decoded.error));
      }
      // Ignored messages change nothing: they wait for no transaction.
      this.ackHandled(ignored.map((delivery) => ({ delivery, outcome: 'ignored' as const })));
      if (valid.length > 0) settling.push(this.apply(valid, !alone));
      await allSettled(settling);
    } catch (err) {
      this.opts.log.error({ err, queue: this.opts.worker.queue }, 'delivery left unacked');
    }
  }

  /**
   * One message through the same path, alone, held by no broker channel:
   * resolves with its outcome (none if it was given up), and its ack
   * reaches nothing. For tests and tools that look at what the consumer
   * decides about a message.
   */
  async process(msg: ConsumeMessage): Promise<Outcome | undefined> {
    const delivery = new Delivery(msg, NO_CHANNEL, this.settled);
    delivery.wait();
    await this.handle([delivery], true);
    if (!delivery.settled) delivery.giveUp('its run ended without settling it');
    return (await delivery.whenSettled).outcome;
  }

  /**
   * Applies `valid` in ONE transaction and settles each: acked together once
   * it committed. If it fails, nothing of it is acked: a message whose own
   * handler failed (or the only one) goes to the failure policy with that
   * error; the others run again one at a time, so they are applied exactly
   * once and a poison message fails alone; one whose run alone would not end
   * within `batchDeadlineMs` of its arrival is sent to its retry instead,
   * unrun (an attempt).
   */
  private async apply(valid: DecodedDelivery[], batched: boolean): Promise<void> {
    const { db, handlerTimeoutMs, log } = this.opts;
    const { worker } = this;
    let effects: CommittedEffects | undefined;
    let failure: unknown;
    try {
      effects = await applyInOneTransaction(
        valid.map((v) => v.message),
        { db, worker, timeoutMs: handlerTimeoutMs, log, now: this.now, batched },
      );
    } catch (err) {
      failure = err;
    }
    if (effects) {
      const { applied } = effects;
      if (batched) log.debug({ messages: valid.length, applied: applied.size }, 'batch committed');
      this.runAfterCommit(effects);
      // The first delivery of an id applied it; a second one in the same batch is a duplicate.
      this.ackHandled(
        valid.map((v) => ({ delivery: v.delivery, outcome: applied.delete(v.message.messageId) ? ('applied' as const) : ('duplicate' as const) })),
      );
      return;
    }
    // A batch of one already ran alone.
    const culprit = failure instanceof MessageFailedError ? failure.culprit : valid.length === 1 ? valid[0]!.message : undefined;
    if (valid.length > 1) log.warn({ messages: valid.length, culprit: culprit?.messageId, err: failure }, 'batch failed; its messages run again one at a time');
    const settling: Promise<void>[] = [];
    let unrun = 0;
    for (const v of valid) {
      if (v.message === culprit) {
        settling.push(this.handlerFailed(v, failure));
        continue;
      }
      // Every run may take the handler timeout (a locked store): rerunning a whole prefetch
      // would hold the last ones unacked past the broker's consumer timeout, which closes
      // the channel and hands them all back. What cannot run in time goes to its retry now.
      if (!this.canRunAlone(v.delivery)) {
        unrun++;
        settling.push(this.failed(v.delivery, this.outOfTime(failure)));
        continue;
      }
      // One after another (not waiting for retry or park copies): alone in the store too, so no two of them contend for a row.
      const run = this.apply([v], false);
      settling.push(run);
      await Promise.race([v.delivery.whenHandled, run]);
    }
    if (unrun > 0)
      log.warn({ messages: unrun, batchDeadlineMs: this.batchDeadlineMs }, 'failed batch out of time: messages sent to their retry without running alone');
    await allSettled(settling);
  }

  private handlerFailed({ delivery, message }: DecodedDelivery, failure: unknown): Promise<void> {
    const err = failure instanceof MessageFailedError ? failure.error : failure;
    deliveryLogger(this.opts.log, delivery.msg.properties).warn(
      { messageId: message.messageId, type: message.type, attempt: attemptOf(delivery.msg), err },
      'handler failed',
    );
    return this.failed(delivery, err);
  }

  /** The handler is done with it; the failure policy retries or parks it, and acks it once that copy is confirmed. */
  private failed(delivery: Delivery, error: unknown): Promise<void> {
    delivery.handled();
    return this.failures.settle(delivery, error);
  }

  /** Deliveries whose outcome is final and needs no copy: acked together on their channel. */
  private ackHandled(decided: DecidedDelivery[]): void {
    for (const { delivery } of decided) delivery.handled();
    Delivery.ackTogether(decided);
  }

  private get batchDeadlineMs(): number {
    return this.opts.batchDeadlineMs ?? DEFAULT_BATCH_DEADLINE_MS;
  }

  /** Whether a run alone, up to the handler timeout, would end within the deadline counted from the delivery's arrival. */
  private canRunAlone(delivery: Delivery): boolean {
    return Date.now() + this.opts.handlerTimeoutMs <= delivery.arrivedAt + this.batchDeadlineMs;
  }

  /** Transient whatever failed the batch: the message itself was never tried alone. */
  private outOfTime(failure: unknown): TransientError {
    return new TransientError(
      `not run: its batch failed and a run alone would not end within ${this.batchDeadlineMs} ms of its delivery (${errorText(failure)})`,
    );
  }

  /** Best effort, after the commit and apart from the ack: a failing callback is logged, nothing else. */
  private runAfterCommit(effects: CommittedEffects): void {
    for (const fn of effects.afterCommit) {
      void (async () => fn())().catch((err) => this.opts.log.warn({ err, queue: this.opts.worker.queue }, 'after-commit callback failed'));
    }
  }

  private readonly now = (): Date => (this.opts.now ? this.opts.now() : new Date());

  /** Stops taking deliveries, lets what it holds settle (bounded), then closes. */
  async stop(timeoutMs: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const ch = this.channel.current();
    const lane = ch && this.lanes.get(ch)?.lane;
    await lane?.stop().catch(() => undefined);
    const drained = (async () => {
      while (this.unsettled.size > 0) await Promise.all([...this.unsettled].map((d) => d.whenSettled));
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([drained, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    await this.channel.close();
  }
}

/** Waits for every one of `work`, then rejects with the first failure if there was one. */
async function allSettled(work: Promise<void>[]): Promise<void> {
  const failed = (await Promise.allSettled(work)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
