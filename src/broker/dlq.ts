import os from 'node:os';
import amqp, { type Channel, type ChannelModel, type GetMessage, type MessageProperties } from 'amqplib';
import { vhostOf } from '../config';
import { headerString } from '../domain/messages';
import { createLogger, type Logger } from '../log';
import { connectBroker } from './connection';
import { withoutPassword } from './management';
import { ConfirmPublisher, type PublishRequest } from './publisher';
import { isBrokerHeader, WARREN_HEADERS } from './retry';
import { dlqOf, RETURN_EXCHANGE } from './topology';

/**
 * Operator tooling behind `warren dlq list|replay|purge <queue>`. One-shot
 * commands on a plain amqplib connection: `basic.get` without ack, so that
 * whatever is not explicitly acked goes back to the DLQ when the channel
 * closes. Nothing parked is deleted except by a replay that was confirmed,
 * or by an explicit purge.
 */

export type ParkKind = 'permanent' | 'exhausted' | 'crash-loop' | 'unknown';

export interface ParkedMessage {
  messageId: string | null;
  type: string | null;
  /** Warren's x-warren-error, or the broker's x-death reason (e.g. `delivery_limit`). */
  reason: string | null;
  kind: ParkKind;
  attempts: number | null;
  firstFailure: string | null;
  lastFailure: string | null;
  originalQueue: string | null;
}

export interface ReplayResult {
  replayed: number;
  /** Left parked because they cannot be replayed (no message_id, no known original queue). */
  skipped: number;
  /** Still in the DLQ when the replay finished. */
  remaining: number;
}

export class DlqError extends Error {
  constructor(message: string, readonly replayed = 0) {
    super(message);
    this.name = 'DlqError';
  }
}

const KINDS: readonly string[] = ['permanent', 'exhausted', 'crash-loop'];

/** Headers the broker or Warren added on the way into the DLQ; a replay starts clean without them. */
function isParkingHeader(key: string): boolean {
  return key.startsWith('x-warren-') || isBrokerHeader(key);
}

interface DeathEntry {
  reason?: string;
  queue?: string;
  time?: number | { value: number };
}

function deaths(headers: Record<string, unknown>): DeathEntry[] {
  const raw = headers['x-death'];
  return Array.isArray(raw) ? (raw as DeathEntry[]) : [];
}

/** amqplib decodes an AMQP timestamp in a table as `{ '!': 'timestamp', value }` (seconds). */
function deathTime(entry: DeathEntry | undefined): string | null {
  const t = entry?.time;
  const seconds = typeof t === 'number' ? t : t?.value;
  return typeof seconds === 'number' ? new Date(seconds * 1000).toISOString() : null;
}

export function describeParked(properties: MessageProperties): ParkedMessage {
  const h: Record<string, unknown> = properties.headers ?? {};
  const all = deaths(h);
  // x-death lists the most recent death first: for a broker park, that is the park.
  const park = all[0];
  const warrenKind = headerString(h[WARREN_HEADERS.kind]);
  const attempts = Number(headerString(h[WARREN_HEADERS.attempts]));
  return {
    messageId: headerString(properties.messageId) ?? null,
    type: headerString(properties.type) ?? null,
    reason: headerString(h[WARREN_HEADERS.error]) ?? park?.reason ?? null,
    kind: warrenKind && KINDS.includes(warrenKind) ? (warrenKind as ParkKind) : park?.reason === 'delivery_limit' ? 'crash-loop' : 'unknown',
    attempts: Number.isInteger(attempts) && headerString(h[WARREN_HEADERS.attempts]) !== undefined ? attempts : null,
    firstFailure: headerString(h[WARREN_HEADERS.firstFailure]) ?? deathTime(all[all.length - 1]),
    lastFailure: headerString(h[WARREN_HEADERS.lastFailure]) ?? deathTime(park),
    originalQueue: headerString(h[WARREN_HEADERS.originalQueue]) ?? park?.queue ?? null,
  };
}

interface OpenDlq {
  conn: ChannelModel;
  channel: Channel;
  dlq: string;
  /** Ready messages in the DLQ when it was opened. */
  parked: number;
}

async function openDlq(url: string, queue: string, purpose: string): Promise<OpenDlq> {
  const dlq = dlqOf(queue);
  let conn: ChannelModel;
  try {
    conn = await amqp.connect(url, { clientProperties: { connection_name: `warren dlq ${purpose} ${os.hostname()} pid ${process.pid}` } });
  } catch (err) {
    throw new DlqError(`cannot connect to ${withoutPassword(url)}: ${(err as Error).message}`);
  }
  // Errors also reject the pending operation; the listeners only keep them from crashing the process.
  conn.on('error', () => undefined);
  try {
    const channel = await conn.createChannel();
    channel.on('error', () => undefined);
    const { messageCount } = await channel.checkQueue(dlq);
    return { conn, channel, dlq, parked: messageCount };
  } catch (err) {
    await conn.close().catch(() => undefined);
    throw new DlqError(`queue ${dlq} in vhost ${vhostOf(url)}: ${(err as Error).message}`);
  }
}

async function closeQuietly(conn: ChannelModel): Promise<void> {
  await conn.close().catch(() => undefined);
}

/** Looks at up to `limit` parked messages; all of them stay parked, unchanged. */
export async function listParked(url: string, queue: string, limit: number): Promise<ParkedMessage[]> {
  const { conn, channel, dlq } = await openDlq(url, queue, 'list');
  const out: ParkedMessage[] = [];
  try {
    while (out.length < limit) {
      const msg = await channel.get(dlq, { noAck: false });
      if (!msg) break;
      out.push(describeParked(msg.properties));
    }
  } finally {
    // Never acked: closing returns every message we looked at to the DLQ.
    await closeQuietly(conn);
  }
  return out;
}

/** The copy sent back: same body and properties, without the parking headers. */
function replayRequest(msg: GetMessage): PublishRequest | string {
  const p = msg.properties;
  const park = describeParked(p);
  if (!park.messageId) return 'it has no message_id, so a consumer would park it again';
  if (!park.originalQueue) return 'it names no original queue (no x-warren-original-queue, no x-death)';
  const headers: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p.headers ?? {})) if (!isParkingHeader(k)) headers[k] = v;
  return {
    exchange: RETURN_EXCHANGE,
    routingKey: park.originalQueue,
    content: msg.content,
    properties: {
      messageId: park.messageId,
      type: p.type,
      contentType: p.contentType,
      contentEncoding: p.contentEncoding,
      correlationId: p.correlationId,
      timestamp: p.timestamp,
      appId: p.appId,
      headers,
    },
  };
}

export interface ReplayOptions {
  limit?: number;
  log?: Logger;
  publishTimeoutMs?: number;
}

/**
 * Sends parked messages back to the queue they failed in, through
 * `warren.return`, one at a time. The DLQ copy is acked only after the
 * replayed copy is confirmed and not returned, so an interrupted replay loses
 * nothing (at worst one message is both replayed and still parked; consumers
 * are idempotent by message_id).
 */
export async function replayParked(url: string, queue: string, opts: ReplayOptions = {}): Promise<ReplayResult> {
  const { conn, channel, dlq, parked } = await openDlq(url, queue, 'replay');
  const log = opts.log ?? createLogger('dlq', 'silent');
  // Publishing gets its own connection: a broker alarm blocks publishers, and must not block our acks.
  const broker = connectBroker({ url, service: 'dlq replay', role: 'publish', heartbeatSeconds: 10, reconnectSeconds: 1, log });
  const publisher = new ConfirmPublisher(broker, log, opts.publishTimeoutMs ?? 10_000);
  let replayed = 0;
  let skipped = 0;
  try {
    if (!(await publisher.waitForChannel(10_000))) throw new DlqError(`cannot open a publishing channel to ${withoutPassword(url)}`);
    // Only what was parked when the replay began: a message that fails again parks behind us and must not loop.
    const limit = Math.min(opts.limit ?? Infinity, parked);
    while (replayed + skipped < limit) {
      const msg = await channel.get(dlq, { noAck: false });
      if (!msg) break;
      const req = replayRequest(msg);
      if (typeof req === 'string') {
        // Held unacked until the end, so the next get moves on; the close returns it to the DLQ.
        log.warn({ dlq, messageId: msg.properties.messageId }, `left parked: ${req}`);
        skipped++;
        continue;
      }
      try {
        await publisher.publish(req);
      } catch (err) {
        channel.nack(msg, false, true);
        throw new DlqError(`replay stopped after ${replayed} message(s): message ${req.properties.messageId} to queue ${req.routingKey}: ${(err as Error).message}`, replayed);
      }
      channel.ack(msg);
      replayed++;
    }
    const { messageCount } = await channel.checkQueue(dlq);
    // Skipped messages are still held by this channel, so they are not yet counted as ready.
    return { replayed, skipped, remaining: messageCount + skipped };
  } finally {
    await publisher.close();
    await broker.close();
    await closeQuietly(conn);
  }
}

/** Deletes every parked message of the queue: only on an operator's explicit command. */
export async function purgeParked(url: string, queue: string): Promise<number> {
  const { conn, channel, dlq } = await openDlq(url, queue, 'purge');
  try {
    const { messageCount } = await channel.purgeQueue(dlq);
    return messageCount;
  } finally {
    await closeQuietly(conn);
  }
}
