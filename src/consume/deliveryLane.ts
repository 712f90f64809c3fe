import type { Channel, ConsumeMessage } from 'amqplib';
import type { Logger } from '../log';
import type { Delivery } from './delivery';

/**
 * `cautious` holds one delivery at a time (prefetch 1), `open` holds up to
 * the configured prefetch, `none` is not subscribed (stopping, or cancelled
 * by the broker).
 */
export type Subscription = 'cautious' | 'open' | 'none';

/** How long a handled delivery may wait for its retry/park copy before it counts as stuck. */
const STUCK_AFTER_MS = 1000;

export interface DeliveryLaneOptions {
  channel: Channel;
  queue: string;
  /** The open subscription's prefetch; the cautious one holds 1. */
  prefetch: number;
  /** Most first deliveries handed to `run` at once. */
  batchSize: number;
  consumerTag(): string;
  /** Each message as it arrives, made a delivery of this channel before the lane decides when it runs. */
  receive(msg: ConsumeMessage): Delivery;
  /**
   * Handles and settles deliveries of this channel, first deliveries
   * together, or a redelivery `alone`; resolves once each is settled, never
   * rejects. Each delivery is handled when its handler is done with it
   * (what is left, a retry or park copy and the ack, cannot crash the
   * process but may wait long on a broker that refuses the copy).
   */
  run(batch: Delivery[], alone: boolean): Promise<void>;
  /** The broker cancelled the subscription (its queue was deleted). */
  onCancelled(): void;
  log: Logger;
}

/** The broker's count of earlier deliveries that came back unacked (crash, closed channel). */
export function deliveryCount(msg: ConsumeMessage): number {
  const n = Number(msg.properties.headers?.['x-delivery-count'] ?? 0);
  return Number.isFinite(n) && n > 0 ? n : msg.fields.redelivered ? 1 : 0;
}

/**
 * Decides when each delivery of one channel runs.
 *
 * A quorum queue's delivery-limit counts every return, and a process that
 * dies returns everything it holds unacked: a message that crashes the
 * process takes the count of every neighbour it was held with up with its
 * own, until the broker parks them all as a crash loop. So a redelivered
 * message (a suspect: it may be the one that crashed us) runs alone: the
 * subscription steps down to one delivery at a time (never none: the queue
 * keeps its consumer, which readiness checks count), the handlers of the
 * deliveries still held finish, then the suspects run one by one; a first
 * delivery that arrives meanwhile waits until they are done. (A delivery
 * whose handler is done but whose retry or park copy the broker has not
 * confirmed yet does not hold the suspects up: it cannot crash the process,
 * and a full DLQ must not stall the queue.) The lane opens up to the full
 * prefetch again at the first delivery that is not a redelivery (returned
 * messages are served before the rest, so by then none are left ahead). A
 * new channel starts cautious for the same reason.
 *
 * First deliveries run in batches (the worker applies a batch in one
 * transaction): whatever has arrived when the lane gets to it, up to
 * `batchSize`, goes together; while a batch runs, what arrives waits and
 * forms the next. There is no batch timer: a lone delivery starts at once.
 *
 * Deliveries are never nacked to make room: a requeue counts like a crash.
 */
export class DeliveryLane {
  private subscription: Subscription = 'none';
  private tag: string | undefined;
  /** The open subscription's tag until its cancel is confirmed: its deliveries were sent before a step-down. */
  private openTag: string | undefined;
  private changing: Promise<void> = Promise.resolve();
  /** Deliveries given a run (or waiting in a batch) whose handler is not done: what a suspect must not run beside. */
  private readonly handling = new Set<Delivery>();
  private readonly suspects: Delivery[] = [];
  /** First deliveries that arrived while suspects run: they wait their turn. */
  private readonly deferred: Delivery[] = [];
  /** First deliveries waiting for the next batch. */
  private readonly ready: Delivery[] = [];
  private batchRunning = false;
  private batchScheduled = false;
  /** Handled deliveries whose retry or park copy the broker keeps refusing. */
  private stuck = 0;
  private isolating = false;
  private suspectRunning = false;
  private closed = false;
  private stopping = false;

  constructor(private readonly opts: DeliveryLaneOptions) {}

  /** Subscribes cautiously; rejects when the broker refuses (the channel setup fails with it). */
  start(): Promise<void> {
    return this.subscribe('cautious');
  }

  /** Subscribed, or holding suspects it runs one by one. */
  active(): boolean {
    return !this.closed && !this.stopping && (this.subscription !== 'none' || this.isolating);
  }

  /** Redelivered messages waiting to run alone, and the one running, if any. */
  isolatingCount(): number {
    return this.isolating ? this.suspects.length + (this.suspectRunning ? 1 : 0) : 0;
  }

  deliver(msg: ConsumeMessage | null): void {
    if (msg === null) {
      this.subscription = 'none';
      this.tag = undefined;
      this.openTag = undefined;
      this.opts.onCancelled();
      return;
    }
    if (this.closed) return; // the broker has requeued it
    const delivery = this.opts.receive(msg);
    delivery.wait();
    if (deliveryCount(msg) > 0) {
      this.suspects.push(delivery);
      if (!this.isolating) {
        this.isolating = true;
        void this.isolate();
      }
      return;
    }
    // Sent by the open subscription before the step-down took effect: it runs, and the suspects wait for its handler.
    if (this.isolating && msg.fields.consumerTag !== this.openTag) this.deferred.push(delivery);
    else this.runFirstDelivery(delivery);
  }

  private runFirstDelivery(delivery: Delivery): void {
    this.busy(delivery);
    this.ready.push(delivery);
    this.scheduleBatch();
    // Not a redelivery: nothing returned is left ahead of it in the queue.
    if (this.subscription === 'cautious' && !this.isolating && !this.stopping && this.opts.prefetch > 1) {
      this.subscribe('open').catch((err) => this.subscriptionLost(err));
    }
  }

  /**
   * Starts the next batch once the one running is done with its handlers.
   * Not a timer: setImmediate lets every delivery already read from the
   * socket (amqplib hands them over one by one in the same tick) join this
   * batch, and costs a lone delivery microseconds, not milliseconds.
   */
  private scheduleBatch(): void {
    if (this.batchRunning || this.batchScheduled || this.ready.length === 0) return;
    this.batchScheduled = true;
    setImmediate(() => {
      this.batchScheduled = false;
      this.startBatch();
    });
  }

  private startBatch(): void {
    if (this.batchRunning) return;
    if (this.closed) return; // close() gave up what waited
    const batch = this.ready.splice(0, Math.max(1, this.opts.batchSize));
    if (batch.length === 0) return;
    this.batchRunning = true;
    this.dispatch(batch, false);
    void Promise.all(batch.map((d) => d.whenHandled)).then(() => {
      this.batchRunning = false;
      this.scheduleBatch();
    });
  }

  /** Hands deliveries to the consumer; whatever it did, none is left unsettled once its run is over. */
  private dispatch(batch: Delivery[], alone: boolean): void {
    const release = () => {
      for (const d of batch) if (!d.settled) d.giveUp('its run ended without settling it');
    };
    this.opts.run(batch, alone).then(release, release);
  }

  /** Runs the suspects one by one, with nothing else held on this channel. */
  private async isolate(): Promise<void> {
    try {
      // In turn with any change under way: an opening that started just before still gets undone.
      await this.change(async () => {
        if (this.subscription === 'open') await this.resubscribe('cautious');
      });
      for (;;) {
        while (this.handling.size > 0) await Promise.all([...this.handling].map((d) => d.whenHandled));
        const next = this.takeSuspect();
        if (!next) break;
        const { msg } = next;
        this.opts.log.debug(
          { queue: this.opts.queue, messageId: msg.properties.messageId, deliveryCount: deliveryCount(msg) },
          'redelivered message runs alone',
        );
        this.suspectRunning = true;
        try {
          await this.runOne(next);
        } finally {
          this.suspectRunning = false;
        }
      }
    } catch (err) {
      this.subscriptionLost(err);
    } finally {
      // No await between the last empty check and this: a later suspect starts a new isolation.
      this.isolating = false;
    }
    for (const d of this.deferred.splice(0)) this.runFirstDelivery(d);
  }

  /** Starts one delivery alone; resolves when its handler is done (its copy and ack may still be under way). */
  private runOne(delivery: Delivery): Promise<void> {
    this.busy(delivery);
    this.dispatch([delivery], true);
    return delivery.whenHandled;
  }

  /**
   * Counts a delivery as being handled (what a suspect must not run beside)
   * until its handler is done: a first delivery waiting for its batch
   * already counts. Once handled, one whose copy is still unconfirmed after
   * a while counts as stuck.
   */
  private busy(delivery: Delivery): void {
    this.handling.add(delivery);
    void delivery.whenHandled.then(() => {
      this.handling.delete(delivery);
      if (delivery.settled) return;
      const timer = setTimeout(() => this.copyStuck(delivery), STUCK_AFTER_MS);
      void delivery.whenSettled.finally(() => clearTimeout(timer));
    });
  }

  /**
   * A cautious subscription's one credit is for a delivery whose handler
   * runs. One stuck on its copy (a full DLQ, a broker alarm) gives it back:
   * the lane subscribes anew with one more, so the queue does not stall
   * behind it; at most `prefetch` are held that way, as when open.
   */
  private copyStuck(delivery: Delivery): void {
    this.stuck++;
    void delivery.whenSettled.finally(() => this.stuck--);
    void this.change(async () => {
      if (this.subscription !== 'cautious' || this.stopping || this.stuck >= this.opts.prefetch) return;
      await this.resubscribe('cautious', true);
    }).catch((err) => this.subscriptionLost(err));
  }

  /**
   * Lowest delivery count first: the message that crashes the process climbs
   * with every crash, its neighbours only when held with it, so they get
   * through before it does. Ties are broken at random: a neighbour tied with
   * the crashing message climbs only while it keeps losing the draw, where
   * any fixed order (the broker returns them in the order it sent them)
   * could make the same one lose every time.
   */
  private takeSuspect(): Delivery | undefined {
    if (this.closed || this.suspects.length === 0) return undefined;
    const lowest = Math.min(...this.suspects.map((d) => deliveryCount(d.msg)));
    const candidates = this.suspects.flatMap((d, i) => (deliveryCount(d.msg) === lowest ? [i] : []));
    const pick = candidates[Math.floor(Math.random() * candidates.length)]!;
    return this.suspects.splice(pick, 1)[0];
  }

  /** Subscription changes run one after another, never interleaved. */
  private change(step: () => Promise<void>): Promise<void> {
    const next = this.changing.then(step);
    this.changing = next.catch(() => undefined);
    return next;
  }

  private subscribe(to: Subscription): Promise<void> {
    return this.change(() => this.resubscribe(to));
  }

  private async resubscribe(to: Subscription, renew = false): Promise<void> {
    if (this.closed || (to === this.subscription && !renew)) return;
    // Decided when its turn comes: an isolation or a stop may have begun since it was asked for.
    if (to !== 'none' && (this.stopping || (to === 'open' && this.isolating))) return;
    const { channel, queue } = this.opts;
    const old = this.tag;
    if (to === 'none') {
      this.subscription = 'none';
      this.tag = undefined;
      if (old) await this.cancel(old);
      return;
    }
    // Make before break: the queue never shows this worker without a consumer
    // (readiness checks count them). basic.qos applies to consumers started after it.
    await channel.prefetch(to === 'cautious' ? 1 : this.opts.prefetch);
    const tag = this.opts.consumerTag();
    // Set before consume: a delivery may be dispatched before the await resumes.
    this.subscription = to;
    this.tag = tag;
    if (to === 'open') this.openTag = tag;
    await channel.consume(queue, (msg) => this.deliver(msg), { noAck: false, consumerTag: tag });
    if (old) await this.cancel(old);
  }

  /** Deliveries already sent stay held on this channel and are still acked on it. */
  private async cancel(tag: string): Promise<void> {
    await this.opts.channel.cancel(tag);
    if (this.openTag === tag) this.openTag = undefined;
  }

  /**
   * A subscription change failed: the channel is broken or about to close.
   * Closing it makes the managed channel open a fresh one, so the consumer
   * never sits connected and idle.
   */
  private subscriptionLost(err: unknown): void {
    if (this.closed) return;
    this.opts.log.warn({ queue: this.opts.queue, err }, 'subscription change failed; reopening the channel');
    this.opts.channel.close().catch(() => undefined);
  }

  /** The channel closed: the broker requeued everything it held, so nothing waiting runs. */
  close(): void {
    this.closed = true;
    this.subscription = 'none';
    this.tag = undefined;
    for (const d of [...this.suspects.splice(0), ...this.deferred.splice(0), ...this.ready.splice(0)])
      d.giveUp('its channel closed before it ran: the broker requeued it');
  }

  /** Stops taking deliveries; what is held still runs, and settles. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.subscribe('none');
  }
}
