import { EventEmitter } from 'node:events';
import type { Channel, ConfirmChannel, ConsumeMessage, MessageProperties } from 'amqplib';
import type { BrokerConnection, ChannelOpener, ReconnectingConnection } from '../../src/broker/connection';

/**
 * A fake AMQP broker side for unit tests, in the manner of
 * amqp-connection-manager's test/fixtures.ts: a connection whose channels
 * record what Warren sends (prefetch, consume, cancel, ack, nack, publish)
 * and let a test play the broker (deliver, close a channel, confirm, nack
 * or return a publish).
 *
 * It keeps the broker's rules that Warren's invariants are about: delivery
 * tags are numbered per channel from 1; an ack settles whatever message
 * holds that tag on the channel it is sent on (so a stale tag acked on a new
 * channel settles a different message, as on RabbitMQ); an ack of a tag the
 * channel does not hold closes the channel (PRECONDITION_FAILED); a closed
 * channel throws on every operation, as amqplib's does; and confirms are
 * numbered the way amqplib 2 numbers them.
 */

/** A message as a test hands it to the broker. */
export interface FakeMessage {
  content: Buffer;
  exchange: string;
  routingKey: string;
  properties: Partial<MessageProperties>;
  /** The broker's redelivered flag: it was delivered before and came back unacked. */
  redelivered?: boolean;
}

/** One `basic.ack` or `basic.nack` as it reached the broker. */
export interface FakeSettlement {
  deliveryTag: number;
  multiple: boolean;
  /** The messages it settled on this channel (several for a multiple one). */
  messageIds: string[];
}

/** A publish as it reached the broker. */
export interface FakePublish {
  exchange: string;
  routingKey: string;
  content: Buffer;
  messageId?: string;
  options: Record<string, unknown>;
}

function illegal(what: string): Error {
  const err = new Error(`Channel closed (${what})`);
  err.name = 'IllegalOperationError';
  return err;
}

/**
 * An amqplib channel (or confirm channel) as far as Warren uses one. Its
 * records are what reached the broker; an operation on a closed channel
 * throws and reaches nothing (only `refusedAcks` counts the attempt).
 */
export class FakeChannel extends EventEmitter {
  closed = false;
  closeCalls = 0;
  /** `basic.qos` values, in order. */
  readonly prefetches: number[] = [];
  /** Every `basic.consume`, in order; `cancelled` once its cancel was sent. */
  readonly consumes: { queue: string; consumerTag: string; cancelled: boolean }[] = [];
  readonly cancels: string[] = [];
  readonly bindings: { queue: string; exchange: string; routingKey: string }[] = [];
  readonly acks: FakeSettlement[] = [];
  readonly nacks: (FakeSettlement & { requeue: boolean })[] = [];
  /** Acks and nacks attempted after the channel closed: amqplib threw, nothing was sent. */
  readonly refusedAcks: { deliveryTag: number; messageId?: string }[] = [];
  /** Acks of a tag this channel did not hold: the broker closed the channel for each. */
  readonly unknownTagAcks: number[] = [];
  /** What reached the broker, in the order sent. */
  readonly sent: FakePublish[] = [];
  /** A confirm channel that confirms each publish on the next turn, for tests about something else. */
  autoConfirm = false;
  /** Makes `publish` throw for a message, as amqplib's encoder does for a header it cannot encode. */
  throwsOn: (messageId: string | undefined) => Error | undefined = () => undefined;

  private readonly consumers = new Map<string, (msg: ConsumeMessage | null) => void>();
  /** Delivered on this channel and not settled yet, by tag (the broker's unacked messages). */
  private readonly outstanding = new Map<number, ConsumeMessage>();
  private nextTag = 0;
  /** Confirm callbacks by slot (amqplib's `unconfirmed`). */
  private readonly unconfirmed: ((err: Error | null) => void)[] = [];
  private confirmed = 0;

  constructor(
    readonly seq: number,
    readonly confirm = false,
  ) {
    super();
    // As amqplib's: its own listener, registered first, fails what waited for a confirm.
    this.on('close', () => {
      for (let i = this.confirmed; i < this.unconfirmed.length; i++) this.unconfirmed[i]?.(new Error('channel closed'));
      this.confirmed = this.unconfirmed.length;
    });
  }

  // --- what Warren calls ---

  async checkQueue(queue: string): Promise<{ queue: string; messageCount: number; consumerCount: number }> {
    if (this.closed) throw illegal('checkQueue');
    return { queue, messageCount: 0, consumerCount: this.consumers.size };
  }

  async bindQueue(queue: string, exchange: string, routingKey: string): Promise<Record<string, never>> {
    if (this.closed) throw illegal('bindQueue');
    this.bindings.push({ queue, exchange, routingKey });
    return {};
  }

  async prefetch(count: number): Promise<void> {
    if (this.closed) throw illegal('prefetch');
    this.prefetches.push(count);
  }

  async consume(queue: string, onMessage: (msg: ConsumeMessage | null) => void, opts: { consumerTag?: string } = {}): Promise<{ consumerTag: string }> {
    if (this.closed) throw illegal('consume');
    const consumerTag = opts.consumerTag ?? `amq.ctag-${this.seq}-${this.consumes.length + 1}`;
    this.consumers.set(consumerTag, onMessage);
    this.consumes.push({ queue, consumerTag, cancelled: false });
    return { consumerTag };
  }

  async cancel(consumerTag: string): Promise<{ consumerTag: string }> {
    if (this.closed) throw illegal('cancel');
    this.consumers.delete(consumerTag);
    this.cancels.push(consumerTag);
    for (const c of this.consumes) if (c.consumerTag === consumerTag) c.cancelled = true;
    return { consumerTag };
  }

  ack(msg: ConsumeMessage, allUpTo = false): void {
    this.settle(msg, allUpTo, (s) => this.acks.push(s));
  }

  nack(msg: ConsumeMessage, allUpTo = false, requeue = true): void {
    this.settle(msg, allUpTo, (s) => this.nacks.push({ ...s, requeue }));
  }

  publish(
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: { messageId?: string } & Record<string, unknown>,
    cb?: (err: Error | null) => void,
  ): boolean {
    if (this.closed) throw illegal('publish');
    // amqplib 2 encodes before it takes the confirm slot: a publish that throws holds none.
    const refused = this.throwsOn(options.messageId);
    if (refused) throw refused;
    if (this.confirm) this.unconfirmed.push(cb ?? (() => undefined));
    this.sent.push({ exchange, routingKey, content, messageId: options.messageId, options });
    if (this.confirm && this.autoConfirm) setImmediate(() => this.confirmNext());
    return true;
  }

  close(): Promise<void> {
    this.closeCalls++;
    if (this.closed) return Promise.reject(illegal('close'));
    this.markClosed();
    setImmediate(() => this.emit('close'));
    return Promise.resolve();
  }

  // --- what the test does as the broker ---

  /** Consumer tags subscribed now, oldest first. */
  activeConsumers(): string[] {
    return [...this.consumers.keys()];
  }

  /**
   * Delivers a message to a subscription of this channel (the newest one
   * unless told), under the next delivery tag of this channel.
   */
  deliver(message: FakeMessage, consumerTag?: string): ConsumeMessage {
    if (this.closed) throw new Error(`channel ${this.seq} is closed: nothing is delivered on it`);
    const tag = consumerTag ?? this.activeConsumers().at(-1);
    const onMessage = tag === undefined ? undefined : this.consumers.get(tag);
    if (tag === undefined || !onMessage) throw new Error(`channel ${this.seq} has no subscription ${consumerTag ?? ''}`);
    const msg = {
      content: message.content,
      fields: {
        deliveryTag: ++this.nextTag,
        redelivered: message.redelivered ?? false,
        exchange: message.exchange,
        routingKey: message.routingKey,
        consumerTag: tag,
      },
      properties: { headers: {}, ...message.properties },
    } as ConsumeMessage;
    this.outstanding.set(msg.fields.deliveryTag, msg);
    onMessage(msg);
    return msg;
  }

  /** The broker cancels every subscription (the queue was deleted). */
  cancelFromBroker(): void {
    for (const [tag, onMessage] of [...this.consumers]) {
      this.consumers.delete(tag);
      onMessage(null);
    }
  }

  /** As the broker or the network closing it: returns what it held unacked, which the broker requeues. */
  closeFromBroker(): ConsumeMessage[] {
    if (this.closed) return [];
    const requeued = this.markClosed();
    this.emit('close');
    return requeued;
  }

  /** Message ids of deliveries not settled on this channel. */
  unacked(): string[] {
    return [...this.outstanding.values()].map((m) => String(m.properties.messageId));
  }

  /** Message ids this channel's acks settled, in order. */
  ackedIds(): string[] {
    return this.acks.flatMap((a) => a.messageIds);
  }

  /** Publishes sent and neither confirmed nor nacked yet. */
  pendingConfirms(): number {
    return this.sent.length - this.confirmed;
  }

  /** The broker confirms the next message it received: it numbers only what was sent. */
  confirmNext(): void {
    const cb = this.unconfirmed[this.confirmed++];
    cb?.(null);
  }

  /** The broker nacks the next message it received (a full queue with reject-publish, an internal error). */
  nackNext(): void {
    const cb = this.unconfirmed[this.confirmed++];
    cb?.(new Error('nacked by the fake broker'));
  }

  /**
   * The next message it received was unroutable under `mandatory`: as
   * RabbitMQ does, the return arrives first, then the confirm.
   */
  returnNext(replyText = 'NO_ROUTE'): void {
    const returned = this.sent[this.confirmed];
    if (returned) {
      this.emit('return', {
        content: returned.content,
        fields: { replyCode: 312, replyText, exchange: returned.exchange, routingKey: returned.routingKey },
        properties: { messageId: returned.messageId },
      });
    }
    this.confirmNext();
  }

  private settle(msg: ConsumeMessage, allUpTo: boolean, record: (s: FakeSettlement) => void): void {
    const tag = msg.fields.deliveryTag;
    if (this.closed) {
      this.refusedAcks.push({ deliveryTag: tag, messageId: msg.properties.messageId as string | undefined });
      throw illegal('ack');
    }
    if (!this.outstanding.has(tag)) {
      // RabbitMQ: PRECONDITION_FAILED - unknown delivery tag, and the channel closes.
      this.unknownTagAcks.push(tag);
      setImmediate(() => {
        this.emit('error', new Error(`Channel closed by server: 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - unknown delivery tag ${tag}"`));
        this.closeFromBroker();
      });
      return;
    }
    const settled = allUpTo ? [...this.outstanding.keys()].filter((t) => t <= tag) : [tag];
    const messageIds = settled.map((t) => {
      const m = this.outstanding.get(t)!;
      this.outstanding.delete(t);
      return String(m.properties.messageId);
    });
    record({ deliveryTag: tag, multiple: allUpTo, messageIds });
  }

  private markClosed(): ConsumeMessage[] {
    this.closed = true;
    const requeued = [...this.outstanding.values()];
    this.outstanding.clear();
    this.consumers.clear();
    return requeued;
  }
}

/** The connection of the moment: it opens FakeChannels (confirm channels for `createConfirmChannel`). */
export class FakeConnection implements ChannelOpener {
  constructor(private readonly open: (confirm: boolean) => FakeChannel) {}

  async createChannel(): Promise<Channel> {
    // A FakeChannel is the part of amqplib's Channel that Warren uses, not all of it.
    return this.open(false) as unknown as Channel;
  }

  async createConfirmChannel(): Promise<ConfirmChannel> {
    return this.open(true) as unknown as ConfirmChannel;
  }
}

/** amqp-connection-manager's role: the connection of the moment, and 'connect' on each (re)connect. */
class FakeConnectionManager extends EventEmitter implements ReconnectingConnection {
  connection: FakeConnection | undefined;
}

export interface FakeBroker {
  connection: BrokerConnection;
  /** Every channel opened, in order (their `seq` counts from 1). */
  channels: FakeChannel[];
  /** The newest channel. */
  latest(): FakeChannel;
  /** Down: no connection to open channels on (as amqp-connection-manager between reconnects); up: 'connect'. */
  setConnected(up: boolean): void;
  setBlocked(blocked: boolean): void;
}

/** A connected BrokerConnection whose connection hands out FakeChannels. */
export function fakeConnection(): FakeBroker {
  const channels: FakeChannel[] = [];
  const model = new FakeConnection((confirm) => {
    const ch = new FakeChannel(channels.length + 1, confirm);
    channels.push(ch);
    return ch;
  });
  const manager = new FakeConnectionManager();
  manager.connection = model;
  let connected = true;
  let blocked = false;
  const connection: BrokerConnection = {
    manager,
    name: 'fake',
    get node() {
      return connected ? 'fake:5672' : undefined;
    },
    isConnected: () => connected,
    isBlocked: () => blocked,
    close: async () => undefined,
  };
  return {
    connection,
    channels,
    latest() {
      const ch = channels.at(-1);
      if (!ch) throw new Error('no channel opened yet');
      return ch;
    },
    setConnected(up) {
      connected = up;
      manager.connection = up ? model : undefined;
      if (up) manager.emit('connect', {});
    },
    setBlocked(b) {
      blocked = b;
    },
  };
}
