import os from 'node:os';
import amqplib, { type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib';
import amqp from 'amqp-connection-manager';
import type { Logger } from '../log';
import { installInt64Headers } from './int64';
import { NodeRotation, nodeLabel, parseNodeList, processOrder } from './nodes';

// Every copy Warren makes of a delivery keeps a 64-bit integer header exact.
installInt64Headers();

/** What a connection is for: services publish or consume; operator commands and checks only look. */
export type ConnectionRole = 'publish' | 'consume' | 'inspect';

export interface BrokerConnectionOptions {
  /** One node's AMQP URL, or a cluster's, comma-separated (see nodes.ts for the order they are tried in). */
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
  /** The connection_name of the connection of the moment (its node included), or of the next one. */
  readonly name: string;
  /** `host:port` of the node connected to; undefined between connections. */
  readonly node: string | undefined;
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

/** The connection_name of a connection to one node: which node it is on, for a cluster's management UI (`... consume on 10.0.0.7:5672`). */
export function nodeConnectionName(service: string, role: ConnectionRole, url: string): string {
  return `${connectionName(service, role)} on ${nodeLabel(url)}`;
}

/**
 * A connect that gets no answer gives up after this many heartbeats, as a
 * silent open connection does: amqplib retries a timed-out connect at once,
 * on the next node.
 */
const CONNECT_TIMEOUT_HEARTBEATS = 2;

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

/**
 * Dials the nodes of `opts.url` in this process's order (nodes.ts), one at a
 * time: amqp-connection-manager asks `findServers` again whenever it has
 * tried every URL it was given, so handing it one URL per call leaves the
 * choice of the next node, after a loss too, to the NodeRotation. Each node
 * gets the connection name that names it.
 */
export function connectBroker(opts: BrokerConnectionOptions): BrokerConnection {
  const base = connectionName(opts.service, opts.role);
  const rotation = new NodeRotation(processOrder(parseNodeList(opts.url)));
  const socketOptions = { noDelay: true, timeout: CONNECT_TIMEOUT_HEARTBEATS * opts.heartbeatSeconds * 1000 };
  const manager = amqp.connect(null, {
    findServers: () => {
      const url = rotation.next();
      return Promise.resolve([
        { url, connectionOptions: { ...socketOptions, clientProperties: { connection_name: nodeConnectionName(opts.service, opts.role, url) } } },
      ]);
    },
    heartbeatIntervalInSeconds: opts.heartbeatSeconds,
    reconnectTimeInSeconds: opts.reconnectSeconds,
  });
  let node: string | undefined;
  const name = () => (node === undefined ? base : `${base} on ${node}`);
  let blocked = false;
  let lastFailure = '';
  manager.on('connect', ({ connection, url }) => {
    const socket = socketOf(connection);
    if (socket) coalesceWrites(socket);
    blocked = false;
    lastFailure = '';
    node = nodeLabel(typeof url === 'string' ? url : '');
    opts.log.info({ connection: name(), node }, `broker connected to ${node}`);
  });
  manager.on('disconnect', ({ err }) => {
    const lost = node;
    node = undefined;
    opts.log.warn({ connection: name(), node: lost, err }, `broker disconnected from ${lost ?? 'its node'}`);
  });
  manager.on('connectFailed', ({ err, url }) => {
    const failed = nodeLabel(typeof url === 'string' ? url : '');
    // Logged once per distinct node and reason, not once per reconnect attempt.
    const why = `${failed} ${err?.message ?? ''}`;
    if (why !== lastFailure) {
      lastFailure = why;
      opts.log.warn({ connection: name(), node: failed, err }, `broker node ${failed} unreachable, trying the next`);
    }
  });
  manager.on('blocked', ({ reason }) => {
    blocked = true;
    opts.log.warn({ connection: name(), reason }, 'broker blocked the connection');
  });
  manager.on('unblocked', () => {
    blocked = false;
    opts.log.info({ connection: name() }, 'broker unblocked the connection');
  });
  return {
    manager,
    get name() {
      return name();
    },
    get node() {
      return node;
    },
    isConnected: () => manager.isConnected(),
    isBlocked: () => blocked,
    close: () => manager.close(),
  };
}

/**
 * A plain connection that does not reconnect (operator commands, passive
 * checks): to the first node of the list, in this process's order, that
 * takes it. Refused credentials are refused by every node alike (users are
 * the cluster's), so they end the search at once.
 */
export async function connectOnce(url: string, service: string, role: ConnectionRole): Promise<ChannelModel> {
  const failures: string[] = [];
  for (const node of processOrder(parseNodeList(url))) {
    try {
      return await amqplib.connect(node, { clientProperties: { connection_name: nodeConnectionName(service, role, node) } });
    } catch (err) {
      const why = (err as Error).message;
      if (/ACCESS.REFUSED|NOT.ALLOWED|\b(403|530)\b/.test(why)) throw err;
      failures.push(`${nodeLabel(node)}: ${why}`);
    }
  }
  throw new Error(`no node answered (${failures.join('; ')})`);
}
