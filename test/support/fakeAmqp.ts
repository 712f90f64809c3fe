import { EventEmitter } from 'node:events';
import type { BrokerConnection } from '../../src/broker/connection';

/**
 * An amqplib channel as far as ManagedChannel and ConfirmPublisher use it,
 * for unit tests. It numbers confirms the way amqplib 0.10 does: `publish`
 * takes the next confirm slot before it encodes, so a publish that throws
 * holds a slot the broker never numbered.
 */
export class FakeChannel extends EventEmitter {
  closed = false;
  closeCalls = 0;
  /** What reached the broker, in the order sent. */
  readonly sent: { exchange: string; routingKey: string; messageId?: string }[] = [];
  /** Confirm callbacks by slot (amqplib's `unconfirmed`). */
  private readonly unconfirmed: ((err: Error | null) => void)[] = [];
  private acked = 0;
  /** Makes `publish` throw for a message, as amqplib's encoder does for a header it cannot encode. */
  throwsOn: (messageId: string | undefined) => Error | undefined = () => undefined;

  constructor(readonly seq: number) {
    super();
  }

  publish(exchange: string, routingKey: string, _content: Buffer, options: { messageId?: string }, cb: (err: Error | null) => void): boolean {
    if (this.closed) {
      const err = new Error('Channel closed');
      err.name = 'IllegalOperationError';
      throw err;
    }
    this.unconfirmed.push(cb);
    const refused = this.throwsOn(options.messageId);
    if (refused) throw refused;
    this.sent.push({ exchange, routingKey, messageId: options.messageId });
    return true;
  }

  /** The broker confirms the next message it received: it numbers only what was sent. */
  confirmNext(): void {
    const cb = this.unconfirmed[this.acked++];
    cb?.(null);
  }

  /** As the broker or the network closing it. */
  closeFromBroker(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }

  close(): Promise<void> {
    this.closeCalls++;
    if (this.closed) return Promise.reject(new Error('Channel closed'));
    this.closed = true;
    setImmediate(() => this.emit('close'));
    return Promise.resolve();
  }
}

/** A connected BrokerConnection whose connection hands out FakeChannels. */
export function fakeConnection(): { connection: BrokerConnection; channels: FakeChannel[]; setConnected(up: boolean): void } {
  const channels: FakeChannel[] = [];
  const make = async () => {
    const ch = new FakeChannel(channels.length + 1);
    channels.push(ch);
    return ch;
  };
  const model = { createChannel: make, createConfirmChannel: make };
  const manager = Object.assign(new EventEmitter(), { connection: model as typeof model | undefined });
  let connected = true;
  /** Down: no connection to open channels on (as amqp-connection-manager between reconnects); up: 'connect'. */
  const setConnected = (up: boolean) => {
    connected = up;
    manager.connection = up ? model : undefined;
    if (up) manager.emit('connect', {});
  };
  const connection = {
    manager,
    name: 'fake',
    isConnected: () => connected,
    isBlocked: () => false,
    close: async () => undefined,
  } as unknown as BrokerConnection;
  return { connection, channels, setConnected };
}
