import os from 'node:os';
import type { Channel, ConfirmChannel } from 'amqplib';
import amqp from 'amqp-connection-manager';
import type { Logger } from '../log';
import { installInt64Headers } from './int64';

// Every copy Warren makes of a delivery keeps a 64-bit integer header exact.
installInt64Headers();

/** What a connection is for: services publish or consume; operator commands and checks only look. */
export type ConnectionRole = 'publish' | 'consume' | 'inspect';

export interface BrokerConnectionOptions {
  url: string;
  /** The service this process is (`api`, `worker analytics`, ...). */
  service: string;
  role: ConnectionRole;
  heartbeatSeconds: number;
  reconnectSeconds: number;
  log: Logger;
}

/** An open AMQP connection as Warren uses it: it only opens channels (amqplib's ChannelModel). */
export interface ChannelOpener {
  createChannel(): Promise<Channel>;
  createConfirmChannel(): Promise<ConfirmChannel>;
}

/**
 * What Warren needs of the reconnecting connection (amqp-connection-manager's
 * AmqpConnectionManager satisfies it): the connection of the moment, absent
 * between reconnects, and a signal on each (re)connect. Channels are Warren's
 * own (src/broker/channel.ts), never the manager's wrappers, so nothing else
 * of it is used, and a fake connection can stand in for it in unit tests.
 */
export interface ReconnectingConnection {
  readonly connection: ChannelOpener | undefined;
  on(event: 'connect', listener: () => void): unknown;
}

/**
 * One AMQP connection that reconnects by itself (amqp-connection-manager).
 * Publishing and consuming never share one: under a memory alarm the broker
 * blocks publishing connections, and acks sent on a blocked connection wait too.
 */
export interface BrokerConnection {
  readonly manager: ReconnectingConnection;
  readonly name: string;
  isConnected(): boolean;
  isBlocked(): boolean;
  close(): Promise<void>;
}

/**
 * The `connection_name` the management UI lists each connection under: which
 * service, on which host, which process, and what for, e.g.
 * `warren worker analytics web-3 pid 4121 consume`. An operator can find the
 * process behind a connection (and a consumer tag, which names the same
 * process) without guessing from client ports.
 */
export function connectionName(service: string, role: ConnectionRole): string {
  return `warren ${service} ${os.hostname()} pid ${process.pid} ${role}`;
}

/** What a stream needs for its writes to be coalesced: a Node socket's cork and uncork. */
export interface CorkableStream {
  write(...args: unknown[]): boolean;
  cork(): void;
  uncork(): void;
}

/**
 * amqplib hands the socket one write per frame batch it takes from a
 * channel (a publish, an ack), and with noDelay each write is a syscall and
 * a TCP segment of its own. Corked at the first write of a turn of the event
 * loop and uncorked on the next tick, the turn's frames leave in one writev:
 * nothing waits for a timer, and backpressure is the socket's as before.
 */
export function coalesceWrites(stream: CorkableStream): void {
  const write = stream.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    stream.uncork();
  };
  stream.write = function coalescedWrite(...args: unknown[]): boolean {
    if (!corked) {
      corked = true;
      stream.cork();
      process.nextTick(uncork);
    }
    return write.apply(stream, args);
  };
}

/** amqplib's socket under the model amqp-connection-manager reports on connect, if it has one. */
function socketOf(model: unknown): CorkableStream | undefined {
  const stream = (model as { connection?: { stream?: Partial<CorkableStream> } } | undefined)?.connection?.stream;
  return stream && typeof stream.cork === 'function' && typeof stream.uncork === 'function' && typeof stream.write === 'function'
    ? (stream as CorkableStream)
    : undefined;
}

export function connectBroker(opts: BrokerConnectionOptions): BrokerConnection {
  const name = connectionName(opts.service, opts.role);
  const manager = amqp.connect([opts.url], {
    heartbeatIntervalInSeconds: opts.heartbeatSeconds,
    reconnectTimeInSeconds: opts.reconnectSeconds,
    connectionOptions: { clientProperties: { connection_name: name }, noDelay: true },
  });
  let blocked = false;
  let lastFailure = '';
  manager.on('connect', ({ connection }) => {
    const socket = socketOf(connection);
    if (socket) coalesceWrites(socket);
    blocked = false;
    opts.log.info({ connection: name }, 'broker connected');
  });
  manager.on('disconnect', ({ err }) => {
    opts.log.warn({ connection: name, err }, 'broker disconnected');
  });
  manager.on('connectFailed', ({ err }) => {
    // Logged once per distinct reason, not once per reconnect attempt.
    if (err?.message !== lastFailure) {
      lastFailure = err?.message ?? '';
      opts.log.warn({ connection: name, err }, 'broker unreachable, retrying');
    }
  });
  manager.on('blocked', ({ reason }) => {
    blocked = true;
    opts.log.warn({ connection: name, reason }, 'broker blocked the connection');
  });
  manager.on('unblocked', () => {
    blocked = false;
    opts.log.info({ connection: name }, 'broker unblocked the connection');
  });
  return {
    manager,
    name,
    isConnected: () => manager.isConnected(),
    isBlocked: () => blocked,
    close: () => manager.close(),
  };
}
