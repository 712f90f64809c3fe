import { z } from 'zod';
import { PermanentError } from './errors';
import { newId, randomHex } from './ids';

/**
 * The one schema module for messages: the API validates with it when it
 * writes an event, consumers validate with it when they receive one.
 * Minor versions only add optional fields; unknown fields are ignored.
 */
export const SCHEMA_VERSION = '1.0';
export const SCHEMA_MAJOR = 1;
export const APP_ID = 'warren';
/** The idempotency record's key column is this wide. */
export const MAX_MESSAGE_ID_LENGTH = 100;
/**
 * No body Warren writes comes near this (a tweet is at most 8,192 UTF-8
 * bytes, six times that if every byte were JSON-escaped); a bigger one is
 * not ours, and parsing and storing it would only cost memory and disk.
 */
export const MAX_BODY_BYTES = 256 * 1024;

const uuid = z.string().uuid();
const isoTime = z.string().datetime({ offset: true });

export const messageSchemas = {
  'tweet.created': z.object({
    tweetId: uuid,
    authorId: uuid,
    authorHandle: z.string().min(1),
    text: z.string().min(1),
    createdAt: isoTime,
  }),
  'user.created': z.object({
    userId: uuid,
    handle: z.string().min(1),
    displayName: z.string(),
    createdAt: isoTime,
  }),
  'user.updated': z.object({
    userId: uuid,
    changes: z.record(z.string(), z.object({ from: z.unknown(), to: z.unknown() })),
    updatedAt: isoTime,
  }),
  'user.followed': z.object({
    followerId: uuid,
    followeeId: uuid,
    at: isoTime,
    followerHandle: z.string().optional(),
  }),
  'user.unfollowed': z.object({
    followerId: uuid,
    followeeId: uuid,
    at: isoTime,
  }),
} as const;

export type MessageType = keyof typeof messageSchemas;
export type MessageBody<T extends MessageType> = z.infer<(typeof messageSchemas)[T]>;

/** Where each type is published. */
export const messageRoutes: Record<MessageType, { exchange: string; routingKey: string }> = {
  'tweet.created': { exchange: 'tweets', routingKey: 'tweet.created' },
  'user.created': { exchange: 'user.events', routingKey: 'user.created' },
  'user.updated': { exchange: 'user.events', routingKey: 'user.updated' },
  'user.followed': { exchange: 'user.events', routingKey: 'user.followed' },
  'user.unfollowed': { exchange: 'user.events', routingKey: 'user.unfollowed' },
};

/**
 * The x-schema-version each type is published with: the minor in which it
 * appeared (or last gained a field). A consumer written for 1.0 knows no
 * user.unfollowed: it acks such a message as a type it does not handle.
 */
export const messageVersions: Record<MessageType, string> = {
  'tweet.created': SCHEMA_VERSION,
  'user.created': SCHEMA_VERSION,
  'user.updated': SCHEMA_VERSION,
  'user.followed': SCHEMA_VERSION,
  'user.unfollowed': '1.1',
};

export function isMessageType(type: unknown): type is MessageType {
  return typeof type === 'string' && Object.prototype.hasOwnProperty.call(messageSchemas, type);
}

/** A validated message as a handler receives it. */
export type WarrenMessage<T extends MessageType = MessageType> = {
  [K in T]: {
    type: K;
    messageId: string;
    body: MessageBody<K>;
    correlationId?: string;
    /** The W3C trace it belongs to (its `traceparent` header), for log correlation. */
    traceparent?: string;
    timestamp?: number;
    schemaVersion: string;
  };
}[T];

/** An event ready to be written to the outbox and later published. */
export interface OutgoingEvent {
  messageId: string;
  type: MessageType;
  exchange: string;
  routingKey: string;
  payload: string;
  correlationId: string | null;
  traceparent: string;
  /** W3C tracestate, kept and published with the traceparent; absent when the trace has none. */
  tracestate?: string;
  schemaVersion: string;
  createdAt: Date;
}

/**
 * A valid traceparent for an event no span recorded: the trace `traceId`
 * (else a random one), a parent id of its own, and not sampled, since no
 * sampler decided to record it.
 */
export function newTraceparent(traceId?: string): string {
  const trace = traceId && /^[0-9a-f]{32}$/.test(traceId) && !/^0+$/.test(traceId) ? traceId : randomHex(16);
  return `00-${trace}-${randomHex(8)}-00`;
}

/** Validates a body against its type's schema and builds the event to publish. */
export function buildEvent<T extends MessageType>(
  type: T,
  body: MessageBody<T>,
  opts: { correlationId?: string | null; traceId?: string; trace?: { traceparent: string; tracestate?: string }; now?: Date } = {},
): OutgoingEvent {
  const parsed = messageSchemas[type].safeParse(body);
  if (!parsed.success) {
    throw new Error(`refusing to publish an invalid ${type}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  const route = messageRoutes[type];
  const payload = JSON.stringify(parsed.data);
  // Consumers park a body over the limit, so it is never published.
  if (Buffer.byteLength(payload) > MAX_BODY_BYTES)
    throw new Error(`refusing to publish a ${type} of ${Buffer.byteLength(payload)} bytes (over ${MAX_BODY_BYTES})`);
  return {
    messageId: newId(),
    type,
    exchange: route.exchange,
    routingKey: route.routingKey,
    payload,
    correlationId: opts.correlationId ?? null,
    traceparent: opts.trace?.traceparent ?? newTraceparent(opts.traceId),
    ...(opts.trace?.tracestate ? { tracestate: opts.trace.tracestate } : {}),
    schemaVersion: messageVersions[type],
    createdAt: opts.now ?? new Date(),
  };
}

/** What a consumer knows of a delivery before trusting it. */
export interface RawDelivery {
  content: Buffer;
  contentType?: string;
  contentEncoding?: string;
  messageId?: string;
  type?: string;
  correlationId?: string;
  timestamp?: number;
  headers: Record<string, unknown>;
}

export type DecodeResult = { kind: 'message'; message: WarrenMessage } | { kind: 'unhandled'; type: MessageType; messageId: string };

/**
 * Decides whether a delivery can ever be processed by a consumer handling
 * `handled` types. Throws PermanentError (park at once) for what retrying
 * cannot fix; returns 'unhandled' for a known type this consumer ignores.
 */
export function decodeDelivery(raw: RawDelivery, handled: readonly MessageType[]): DecodeResult {
  if (!raw.messageId) throw new PermanentError('missing message_id');
  if (raw.messageId.length > MAX_MESSAGE_ID_LENGTH) throw new PermanentError(`message_id longer than ${MAX_MESSAGE_ID_LENGTH} characters`);
  const contentType = (raw.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (contentType !== 'application/json') throw new PermanentError(`unsupported content type ${JSON.stringify(raw.contentType ?? '')}`);
  const encoding = (raw.contentEncoding ?? '').trim().toLowerCase();
  if (encoding !== '' && encoding !== 'identity') throw new PermanentError(`unsupported content encoding ${JSON.stringify(raw.contentEncoding)}`);
  const version = headerString(raw.headers['x-schema-version']) ?? SCHEMA_VERSION;
  const major = Number(version.split('.')[0]);
  if (!Number.isInteger(major)) throw new PermanentError(`malformed x-schema-version ${JSON.stringify(version)}`);
  if (major > SCHEMA_MAJOR) throw new PermanentError(`x-schema-version ${version} is newer than this consumer's ${SCHEMA_VERSION}`);
  if (!isMessageType(raw.type)) throw new PermanentError(`unknown message type ${JSON.stringify(raw.type ?? '')}`);
  if (!handled.includes(raw.type)) return { kind: 'unhandled', type: raw.type, messageId: raw.messageId };
  if (raw.content.length > MAX_BODY_BYTES) throw new PermanentError(`body of ${raw.content.length} bytes is larger than ${MAX_BODY_BYTES}`);
  let json: unknown;
  try {
    json = JSON.parse(raw.content.toString('utf8'));
  } catch {
    throw new PermanentError('body is not valid JSON');
  }
  const parsed = messageSchemas[raw.type].safeParse(json);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
    throw new PermanentError(`body does not match ${raw.type}: ${why}`);
  }
  return {
    kind: 'message',
    message: {
      type: raw.type,
      messageId: raw.messageId,
      body: parsed.data,
      correlationId: raw.correlationId,
      traceparent: headerString(raw.headers.traceparent),
      timestamp: raw.timestamp,
      schemaVersion: version,
    } as WarrenMessage,
  };
}

export function headerString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (typeof v === 'number') return String(v);
  return undefined;
}
