import type { Channel, ConsumeMessage } from 'amqplib';
import type { Logger } from '../log';

/**
 * `cautious` holds one delivery at a time (prefetch 1), `open` holds up to
 * the configured prefetch, `none` is not subscribed (stopping, or cancelled
 * by the broker).
 */
export type Subscription = 'cautious' | 'open' | 'none';

/** How long a handled delivery may wait for its retry/park copy before it counts as stuck. */
const STUCK_AFTER_MS = 1000;

/** One delivery of a batch, with what the lane needs to hear about it. */
export interface BatchDelivery {
  msg: ConsumeMessage;
  /** The handler is done with it (see DeliveryLaneOptions.run). */
  handled(): void;
  /** It is acked, or given up (its channel closed). */
  finished(): void;
}

export interface DeliveryLaneOptions {
  channel: Channel;
  queue: string;
  /** The open subscription's prefetch; the cautious one holds 1. */
  prefetch: number;
  /** Most first deliveries handed to `runBatch` at once. */
  batchSize: number;
  consumerTag(): string;
  /** Every delivery, as it arrives, before the lane decides when it runs. */
  received(msg: ConsumeMessage): void;
  /**
   * Handles and acknowledges one delivery on this channel; never rejects.
   * Calls `handled` once the handler is done with it (what is left, a retry
   * or park copy and the ack, cannot crash the process but may wait long on
   * a broker that refuses the copy).
   */
  run(msg: ConsumeMessage, handled: () => void): Promise<void>;
  /**
   * Handles and acknowledges first deliveries of this channel together;
   * never rejects. Calls each one's `handled` and `finished` as `run` would.
   */
  runBatch(batch: BatchDelivery[]): Promise<void>;
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
  /** Deliveries whose handler has not finished: what a suspect must not run beside. */
  private readonly handling = new Set<Promise<void>>();
  /** Every delivery not yet acked or given up. */
  private readonly jobs = new Set<Promise<void>>();
  private readonly suspects: ConsumeMessage[] = [];
  /** First deliveries that arrived while suspects run: they wait their turn. */
  private readonly deferred: ConsumeMessage[] = [];
  /** First deliveries waiting for the next batch. */
  private readonly ready: Held[] = [];
  private batchRunning = false;
  private batchScheduled = false;
  /** Handled deliveries whose retry or park copy the broker keeps refusing. */
  private stuck = 0;
  private isolating = false;
  private isolation: Promise<void> = Promise.resolve();
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

  /** Redelivered messages waiting to run alone, and whether one is running. */
  isolatingCount(): number {
    return this.isolating ? this.suspects.length + 1 : 0;
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
    this.opts.received(msg);
    if (deliveryCount(msg) > 0) {
      this.suspects.push(msg);
      if (!this.isolating) {
        this.isolating = true;
        this.isolation = this.isolate();
      }
      return;
    }
    // Sent by the open subscription before the step-down took effect: it runs, and the suspects wait for its handler.
    if (this.isolating && msg.fields.consumerTag !== this.openTag) this.deferred.push(msg);
    else this.runFirstDelivery(msg);
  }

  private runFirstDelivery(msg: ConsumeMessage): void {
    this.ready.push(this.hold(msg));
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
    if (this.closed) {
      this.dropReady();
      return;
    }
    const batch = this.ready.splice(0, Math.max(1, this.opts.batchSize));
    if (batch.length === 0) return;
    this.batchRunning = true;
    const job = this.opts.runBatch(batch.map((h) => ({ msg: h.msg, handled: h.handled, finished: h.finished })));
    // Whatever the consumer did, nothing of this batch is left pending once its job is over.
    const release = () => {
      for (const h of batch) {
        h.finished();
        h.handled();
      }
    };
    job.then(release, release);
    void Promise.all(batch.map((h) => h.handlerDone)).then(() => {
      this.batchRunning = false;
      this.scheduleBatch();
    });
  }

  /** The channel closed: the broker requeued what waited for a batch. */
  private dropReady(): void {
    for (const h of this.ready.splice(0)) {
      h.finished();
      h.handled();
    }
  }

  /** Runs the suspects one by one, with nothing else held on this channel. */
  private async isolate(): Promise<void> {
    try {
      // In turn with any change under way: an opening that started just before still gets undone.
      await this.change(async () => {
        if (this.subscription === 'open') await this.resubscribe('cautious');
      });
      for (;;) {
        while (this.handling.size > 0) await Promise.all([...this.handling]);
        const next = this.takeSuspect();
        if (!next) break;
        this.opts.log.debug({ queue: this.opts.queue, messageId: next.properties.messageId, deliveryCount: deliveryCount(next) }, 'redelivered message runs alone');
        await this.runOne(next);
      }
    } catch (err) {
      this.subscriptionLost(err);
    } finally {
      // No await between the last empty check and this: a later suspect starts a new isolation.
      this.isolating = false;
    }
    for (const msg of this.deferred.splice(0)) if (!this.closed) this.runFirstDelivery(msg);
  }

  /** Starts one delivery; resolves when its handler is done (its copy and ack may still be under way). */
  private runOne(msg: ConsumeMessage): Promise<void> {
    const held = this.hold(msg);
    this.opts.run(msg, held.handled).then(held.finished, held.finished);
    return held.handlerDone;
  }

  /**
   * Counts a delivery as held from now until `finished`, and as being
   * handled (what a suspect must not run beside) until `handled`: a first
   * delivery waiting for its batch already counts.
   */
  private hold(msg: ConsumeMessage): Held {
    let handled!: () => void;
    let finished!: () => void;
    const handlerDone = new Promise<void>((resolve) => (handled = resolve));
    const job = new Promise<void>((resolve) => (finished = resolve));
    let isFinished = false;
    void job.finally(() => (isFinished = true));
    void job.finally(handled);
    this.handling.add(handlerDone);
    void handlerDone.finally(() => this.handling.delete(handlerDone));
    this.jobs.add(job);
    void job.finally(() => this.jobs.delete(job));
    void handlerDone.then(() => {
      if (isFinished) return;
      const timer = setTimeout(() => this.copyStuck(job), STUCK_AFTER_MS);
      void job.finally(() => clearTimeout(timer));
    });
    return { msg, handled, finished, handlerDone };
  }

  /**
   * A cautious subscription's one credit is for a delivery whose handler
   * runs. One stuck on its copy (a full DLQ, a broker alarm) gives it back:
   * the lane subscribes anew with one more, so the queue does not stall
   * behind it; at most `prefetch` are held that way, as when open.
   */
  private copyStuck(job: Promise<void>): void {
    this.stuck++;
    void job.finally(() => this.stuck--);
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
  private takeSuspect(): ConsumeMessage | undefined {
    if (this.closed) {
      this.suspects.length = 0;
      return undefined;
    }
    if (this.suspects.length === 0) return undefined;
    const lowest = Math.min(...this.suspects.map(deliveryCount));
    const candidates = this.suspects.flatMap((m, i) => (deliveryCount(m) === lowest ? [i] : []));
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
    this.opts.log.warn({ queue: this.opts.queue, err: (err as Error).message }, 'subscription change failed; reopening the channel');
    this.opts.channel.close().catch(() => undefined);
  }

  /** The channel closed: the broker requeued everything it held, so nothing waiting runs. */
  close(): void {
    this.closed = true;
    this.subscription = 'none';
    this.tag = undefined;
    this.suspects.length = 0;
    this.deferred.length = 0;
    this.dropReady();
  }

  /** Stops taking deliveries; what is held still runs (see idle). */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.subscribe('none');
  }

  /** Resolves when nothing of this channel runs or waits to run (a batch waiting to start is held, so counted). */
  async idle(): Promise<void> {
    while (this.jobs.size > 0 || this.isolating) await Promise.all([...this.jobs, this.isolation]);
  }
}

interface Held {
  msg: ConsumeMessage;
  handled: () => void;
  finished: () => void;
  handlerDone: Promise<void>;
}
