import type { ConsumeMessage } from 'amqplib';
import type { ParkKind } from './retry';

/**
 * One message the broker handed to this consumer, from its arrival to its
 * one end:
 *
 *   received → waiting → handling → handled → acked
 *                                            ↘ given up
 *
 * `waiting`: the lane holds it until its turn (a batch, or its run alone);
 * `handling`: it is decoded and its transaction runs; `handled`: the
 * handler is done with it (what is left, a retry or park copy and the ack,
 * cannot crash the process); then it is acked on the channel it came on,
 * or given up, unacked, because that channel closed (the broker requeued
 * it). It can be given up at any step before its end: a channel closes
 * whenever it does.
 *
 * Every transition happens once. One that is not allowed throws, before
 * anything reaches the broker, in production as in tests: it means the
 * consumer lost track of a delivery (a second ack of a tag closes the
 * channel with PRECONDITION_FAILED and requeues everything it holds; an ack
 * before the commit loses the message). Throwing leaves the message
 * unacked, which at-least-once delivery and the inbox make safe; the run
 * that threw is logged as 'delivery left unacked' and the process goes on.
 */
export type DeliveryState = 'received' | 'waiting' | 'handling' | 'handled' | 'acked' | 'given-up';

export type Outcome = 'applied' | 'duplicate' | 'ignored' | 'retried' | 'parked';

const NEXT: Record<DeliveryState, readonly DeliveryState[]> = {
  received: ['waiting', 'given-up'],
  waiting: ['handling', 'given-up'],
  handling: ['handled', 'given-up'],
  handled: ['acked', 'given-up'],
  acked: [],
  'given-up': [],
};

export class IllegalTransitionError extends Error {
  constructor(msg: ConsumeMessage, from: DeliveryState, to: DeliveryState) {
    super(`delivery ${msg.fields.deliveryTag} (${String(msg.properties.messageId)}) cannot go from ${from} to ${to}`);
    this.name = 'IllegalTransitionError';
  }
}

/**
 * The channel a delivery arrived on, as far as acking it goes
 * (src/consume/acks.ts): acks reach that channel and no other, since
 * delivery tags restart at 1 on every channel.
 */
export interface AckChannel {
  /** The channel closed: the broker has requeued what it held, so nothing of it may be acked. */
  readonly closed: boolean;
  received(msg: ConsumeMessage): void;
  /** Throws what the channel throws (closed): nothing is acked then. */
  ack(msgs: readonly ConsumeMessage[]): void;
}

/** What a failed delivery's retry or park came to, once its copy was confirmed. */
export interface FailureNote {
  attempt: number;
  /** The delay step of a retry. */
  delay?: string;
  /** Why it was parked. */
  kind?: ParkKind;
  err: string;
}

/** How one delivery ended: what metrics and per-delivery logs hear. */
export interface Settlement {
  delivery: Delivery;
  /**
   * `acked`; `stale`: its outcome is final but nothing could be acked (its
   * channel closed, or the ack failed), so the broker redelivers it;
   * `released`: given up before it had an outcome.
   */
  end: 'acked' | 'stale' | 'released';
  outcome?: Outcome;
  failure?: FailureNote;
  /** Why it was not acked. */
  why?: string;
  /** The error of an ack that failed. */
  error?: string;
}

export interface DecidedDelivery {
  delivery: Delivery;
  outcome: Outcome;
  failure?: FailureNote;
}

export class Delivery {
  /** When it reached the consumer: a failed batch's deadline counts from here. */
  readonly arrivedAt = Date.now();
  /** Resolves once the handler is done with it (or it ended before that). */
  readonly whenHandled: Promise<void>;
  readonly whenSettled: Promise<Settlement>;
  private current: DeliveryState = 'received';
  private ran = false;
  private markHandled!: () => void;
  private markSettled!: (s: Settlement) => void;

  constructor(
    readonly msg: ConsumeMessage,
    /** The channel it arrived on, the only one it is ever acked on. */
    readonly channel: AckChannel,
    private readonly onSettled: (s: Settlement) => void,
  ) {
    this.whenHandled = new Promise((resolve) => (this.markHandled = resolve));
    this.whenSettled = new Promise((resolve) => (this.markSettled = resolve));
    channel.received(msg);
  }

  get state(): DeliveryState {
    return this.current;
  }

  get settled(): boolean {
    return this.current === 'acked' || this.current === 'given-up';
  }

  /** Its run began: it was decoded, maybe applied (a redelivery counts only then). */
  get started(): boolean {
    return this.ran;
  }

  /** The lane holds it until its turn. */
  wait(): void {
    this.move('waiting');
  }

  start(): void {
    this.move('handling');
    this.ran = true;
  }

  handled(): void {
    this.move('handled');
    this.markHandled();
  }

  /** Acks it on its own channel: its effect committed, or its retry or park copy was confirmed. */
  ack(outcome: Outcome, failure?: FailureNote): void {
    Delivery.ackTogether([{ delivery: this, outcome, ...(failure ? { failure } : {}) }]);
  }

  /** Ends it unacked, without an outcome: its channel closed before it had one, so the broker requeued it. */
  giveUp(why: string): void {
    this.move('given-up');
    this.finish({ delivery: this, end: 'released', why });
  }

  /**
   * Acks handled deliveries of one channel with as few acks as that channel
   * allows (a batch that committed together). On a channel that closed
   * nothing is sent, and each ends as stale.
   */
  static ackTogether(decided: readonly DecidedDelivery[]): void {
    if (decided.length === 0) return;
    const { channel } = decided[0]!.delivery;
    // Every check before anything is sent: a batch is acked whole or not at all.
    if (decided.length > 1 && new Set(decided.map((d) => d.delivery)).size !== decided.length) throw new Error('a delivery listed twice in one ack');
    for (const { delivery } of decided) {
      if (delivery.channel !== channel)
        throw new Error(`delivery ${delivery.msg.fields.deliveryTag} arrived on another channel than the deliveries it would be acked with`);
      delivery.check('acked');
    }
    let why: string | undefined;
    let error: string | undefined;
    if (channel.closed) {
      why = 'its channel closed, the broker redelivers it';
    } else {
      try {
        channel.ack(decided.map((d) => d.delivery.msg));
      } catch (err) {
        why = 'ack failed';
        error = (err as Error).message;
      }
    }
    for (const { delivery, outcome, failure } of decided) {
      delivery.move(why ? 'given-up' : 'acked');
      const s: Settlement = { delivery, end: why ? 'stale' : 'acked', outcome };
      if (failure) s.failure = failure;
      if (why) s.why = why;
      if (error) s.error = error;
      delivery.finish(s);
    }
  }

  private check(to: DeliveryState): void {
    if (!NEXT[this.current].includes(to)) throw new IllegalTransitionError(this.msg, this.current, to);
  }

  private move(to: DeliveryState): void {
    this.check(to);
    this.current = to;
  }

  private finish(s: Settlement): void {
    this.markHandled();
    this.markSettled(s);
    this.onSettled(s);
  }
}
