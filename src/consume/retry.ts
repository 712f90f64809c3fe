import { PermanentError } from '../domain/errors';
import { headerString } from '../domain/messages';
import { boundForeignHeaders, describeDropped } from './foreignHeaders';
export { isBrokerHeader } from './foreignHeaders';
import type { DelayStep } from '../topology/definitions';

/**
 * The attempt / backoff / park decision, pure. A failed message is either
 * sent to a delay queue (which dead-letters it back to the queue it failed
 * in) or parked in that queue's DLQ with headers saying why.
 */
export type { DelayStep };

/** Why Warren parked a message (its `x-warren-kind`). */
export const PARK_KINDS = ['permanent', 'exhausted', 'crash-loop'] as const;
export type ParkKind = (typeof PARK_KINDS)[number];

export type FailureDecision = { action: 'retry'; step: DelayStep; attempt: number } | { action: 'park'; kind: ParkKind; attempt: number };

export const WARREN_HEADERS = {
  error: 'x-warren-error',
  kind: 'x-warren-error-kind',
  attempts: 'x-warren-attempts',
  firstFailure: 'x-warren-first-failure',
  lastFailure: 'x-warren-last-failure',
  originalQueue: 'x-warren-original-queue',
  originalExchange: 'x-warren-original-exchange',
  originalRoutingKey: 'x-warren-original-routing-key',
  /** Which of the original's own headers a copy left out, and why (too deep, too large, not encodable). */
  headersDropped: 'x-warren-headers-dropped',
} as const;

/**
 * What a replay adds to the copy it sends back (src/ops/dlq.ts): how many
 * times the message has been replayed, and the replay that sent it. Its
 * retries and its next park carry them on, so that a message parked again
 * after a replay can be told from one parked the first time.
 */
export const REPLAY_HEADERS = {
  count: 'x-warren-replay-count',
  id: 'x-warren-replay-id',
} as const;

/** The replay headers of a delivery, in the shape a replay writes them (a count of 1 or more, an id of at most 64 characters), else none. */
export function replayHeaders(original: Record<string, unknown>): Record<string, string | number> {
  const count = Number(headerString(original[REPLAY_HEADERS.count]));
  const id = headerString(original[REPLAY_HEADERS.id]);
  if (!Number.isInteger(count) || count < 1 || count > 1_000_000) return {};
  return { [REPLAY_HEADERS.count]: count, ...(id && id.length <= 64 ? { [REPLAY_HEADERS.id]: id } : {}) };
}

export const MAX_ERROR_BYTES = 1024;
/** All of Warren's headers together stay under this (the frame is 128 KiB). */
export const MAX_WARREN_HEADER_BYTES = 8 * 1024;

/** Attempts already made before this delivery (0 for a first delivery). */
export function previousAttempts(headers: Record<string, unknown>): number {
  const n = Number(headerString(headers[WARREN_HEADERS.attempts]) ?? 0);
  return Number.isInteger(n) && n >= 0 ? n : 0;
}

/**
 * `attempt` counts this delivery (1 for the first). Attempt n that fails is
 * retried after step n-1 (the last step repeats) until `maxAttempts`.
 */
export function decideFailure(error: unknown, attempt: number, maxAttempts: number, steps: DelayStep[]): FailureDecision {
  if (error instanceof PermanentError) return { action: 'park', kind: 'permanent', attempt };
  if (attempt >= maxAttempts || steps.length === 0) return { action: 'park', kind: 'exhausted', attempt };
  const step = steps[Math.min(attempt - 1, steps.length - 1)]!;
  return { action: 'retry', step, attempt };
}

export function errorText(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return truncateUtf8(text, MAX_ERROR_BYTES);
}

export function truncateUtf8(text: string, maxBytes: number): string {
  const buf = Buffer.from(text, 'utf8');
  if (buf.length <= maxBytes) return text;
  // Cut on a character boundary: drop any partial trailing sequence.
  return (
    buf
      .subarray(0, maxBytes - 3)
      .toString('utf8')
      .replace(/\uFFFD$/, '') + '...'
  );
}

export interface FailureRecord {
  error: unknown;
  attempt: number;
  queue: string;
  /** Where the message was first published (kept across retries). */
  exchange: string;
  routingKey: string;
  now: Date;
}

/** Warren's headers for a retry or park copy; everything else of the original is kept. */
export function failureHeaders(original: Record<string, unknown>, rec: FailureRecord, kind?: ParkKind): Record<string, unknown> {
  const now = rec.now.toISOString();
  // What came in with the message is only trusted in the shape Warren writes
  // it: a foreign publisher may send any x-warren-* header, of any size.
  const first = isoTime(headerString(original[WARREN_HEADERS.firstFailure])) ?? now;
  const warren: Record<string, string | number> = {
    ...replayHeaders(original),
    [WARREN_HEADERS.error]: errorText(rec.error),
    [WARREN_HEADERS.attempts]: rec.attempt,
    [WARREN_HEADERS.firstFailure]: first,
    [WARREN_HEADERS.lastFailure]: now,
    // Always the queue it failed in: a replay sends it back there and nowhere else.
    [WARREN_HEADERS.originalQueue]: rec.queue,
    [WARREN_HEADERS.originalExchange]: truncateUtf8(headerString(original[WARREN_HEADERS.originalExchange]) ?? rec.exchange, 255),
    [WARREN_HEADERS.originalRoutingKey]: truncateUtf8(headerString(original[WARREN_HEADERS.originalRoutingKey]) ?? rec.routingKey, 255),
  };
  if (kind) warren[WARREN_HEADERS.kind] = kind;
  // The copy is encoded again: foreign headers too deep, too large or not
  // encodable would make it throw (or overflow the stack) or not fit the
  // frame; they are left out, and said so.
  const { kept, dropped } = boundForeignHeaders(original);
  if (dropped.length > 0) warren[WARREN_HEADERS.headersDropped] = truncateUtf8(describeDropped(dropped), MAX_ERROR_BYTES);
  return { ...kept, ...warren };
}

/**
 * A copy whose headers amqplib still could not encode (a shape the bounds
 * do not know): only Warren's headers go, with a note, so the copy cannot
 * fail the same way again.
 */
export function withOnlyWarrenHeaders(headers: Record<string, unknown>, why: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers)) if (k.startsWith('x-warren-')) out[k] = v;
  out[WARREN_HEADERS.headersDropped] = truncateUtf8(`all of the original's own headers: the copy could not be encoded (${why})`, MAX_ERROR_BYTES);
  return out;
}

function isoTime(value: string | undefined): string | undefined {
  if (!value || value.length > 40 || Number.isNaN(Date.parse(value))) return undefined;
  return new Date(value).toISOString();
}

export function warrenHeaderBytes(headers: Record<string, unknown>): number {
  let n = 0;
  for (const [k, v] of Object.entries(headers)) if (k.startsWith('x-warren-')) n += Buffer.byteLength(k) + Buffer.byteLength(String(v));
  return n;
}
