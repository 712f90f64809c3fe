/** @file
 * What the console keeps of one park: the index entry made from the copy of
 * a parked message that `warren.parked.index` received, pure. The DLQ keeps
 * the message itself; this is what browsing and search read, so that
 * looking never takes a parked message from its DLQ.
 */
import crypto from 'node:crypto';
import type { MessageProperties } from 'amqplib';
import { headerString } from '../domain/messages';
import { describeParked, parkedSince, type ParkedKind } from '../ops/dlq';
import { REPLAY_HEADERS } from '../consume/retry';

/**
 * The queue that receives a copy of every park: bound to `warren.dlx` with
 * `#`, so that the broker's own crash-loop parks (dead-lettered with the
 * work queue's name) are indexed as well as Warren's.
 */
export const PARKED_INDEX_QUEUE = 'warren.parked.index';

/** `gone`: an action looked for it in its DLQ and did not find it there (replayed or purged with `warren dlq`). */
export type ParkStatus = 'parked' | 'replayed' | 'discarded' | 'gone';

/** A copy as the index queue delivered it. */
export interface IndexedDelivery {
  content: Buffer;
  properties: MessageProperties;
  /** The park's routing key: the name of the work queue whose DLQ holds the message. */
  routingKey: string;
}

export interface ParkRecord {
  /** One park of one message: a repeated copy of the same park (a redelivery, a re-park by `warren dlq replay`) has the same key. */
  parkKey: string;
  queue: string;
  /** Where a replay sends it: x-warren-original-queue, or the queue the broker dead-lettered it from. */
  originalQueue: string | null;
  messageId: string | null;
  type: string | null;
  kind: ParkedKind;
  attempts: number | null;
  reason: string | null;
  firstFailure: string | null;
  lastFailure: string | null;
  /** When it was parked (epoch ms): Warren's last failure, or the broker's dead-lettering time; null when the copy says neither. */
  parkedAt: number | null;
  /** The earliest moment its effect could have been applied (see parkedSince): what the late-replay refusal reads. */
  since: number | null;
  body: string;
  bodyEncoding: 'utf8' | 'base64';
  headers: Record<string, unknown>;
  properties: Record<string, unknown>;
  /** How many times this message had been replayed before it was parked this time (0: never). */
  replayCount: number;
  replayId: string | null;
  /** Lower-cased body and headers: what search matches. */
  searchText: string;
}

function bodyOf(content: Buffer): Pick<ParkRecord, 'body' | 'bodyEncoding'> {
  const text = content.toString('utf8');
  return Buffer.from(text, 'utf8').equals(content) ? { body: text, bodyEncoding: 'utf8' } : { body: content.toString('base64'), bodyEncoding: 'base64' };
}

/** Headers and properties as JSON keeps them (64-bit headers as their digits, timestamps as amqplib's typed values). */
function jsonOf(value: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(value ?? {}, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as Record<string, unknown>;
}

/** A positive integer header as Warren writes it, or 0 (absent, or not in Warren's shape). */
export function replayCountOf(headers: Record<string, unknown>): number {
  const n = Number(headerString(headers[REPLAY_HEADERS.count]));
  return Number.isInteger(n) && n > 0 ? n : 0;
}

export function parkRecord(d: IndexedDelivery): ParkRecord {
  const described = describeParked(d.properties);
  const headers = jsonOf(d.properties.headers);
  const { headers: _headers, ...rest } = d.properties;
  const properties = jsonOf(rest);
  const parkedAt = Date.parse(described.lastFailure ?? '');
  const replayCount = replayCountOf(d.properties.headers ?? {});
  const replayId = replayCount > 0 ? (headerString(d.properties.headers?.[REPLAY_HEADERS.id])?.slice(0, 64) ?? null) : null;
  const body = bodyOf(d.content);
  const parkKey = crypto
    .createHash('sha256')
    .update(
      JSON.stringify([
        d.routingKey,
        described.messageId,
        Number.isFinite(parkedAt) ? parkedAt : null,
        replayId,
        crypto.createHash('sha256').update(d.content).digest('hex'),
      ]),
    )
    .digest('hex');
  return {
    parkKey,
    queue: d.routingKey,
    ...described,
    parkedAt: Number.isFinite(parkedAt) ? parkedAt : null,
    since: parkedSince(d.properties),
    ...body,
    headers,
    properties,
    replayCount,
    replayId,
    searchText: `${body.bodyEncoding === 'utf8' ? body.body : ''}\n${JSON.stringify(headers)}`.toLowerCase(),
  };
}
