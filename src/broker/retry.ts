import { PermanentError } from '../domain/errors';
import { headerString } from '../domain/messages';
import type { DelayStep } from './topology';

/**
 * The attempt / backoff / park decision, pure. A failed message is either
 * sent to a delay queue (which dead-letters it back to the queue it failed
 * in) or parked in that queue's DLQ with headers saying why.
 */
export type { DelayStep };

export type ParkKind = 'permanent' | 'exhausted' | 'crash-loop';

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
  /** Set instead of the original's own headers when those were too large to copy. */
  headersDropped: 'x-warren-headers-dropped',
} as const;

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
  return buf.subarray(0, maxBytes - 3).toString('utf8').replace(/\uFFFD$/, '') + '...';
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
  const kept = withoutBrokerHeaders(withoutWarrenHeaders(original));
  // A copy must fit the frame the original barely fitted (a header block over
  // the frame size closes the whole connection): oversized foreign headers are dropped, and said so.
  if (approximateBytes(kept) > MAX_KEPT_HEADER_BYTES) return { ...warren, [WARREN_HEADERS.headersDropped]: Object.keys(kept).length };
  return { ...kept, ...warren };
}

/** Foreign headers kept on a retry or park copy, at most (the frame is 128 KiB). */
export const MAX_KEPT_HEADER_BYTES = 64 * 1024;

function approximateBytes(headers: Record<string, unknown>): number {
  try {
    return Buffer.byteLength(JSON.stringify(headers, (_k, v: unknown) => (Buffer.isBuffer(v) ? 'x'.repeat(v.length) : v)));
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

function isoTime(value: string | undefined): string | undefined {
  if (!value || value.length > 40 || Number.isNaN(Date.parse(value))) return undefined;
  return new Date(value).toISOString();
}

/**
 * Headers the broker adds (dead-letter history, a quorum queue's delivery
 * count) are dropped from copies Warren publishes: x-death holds AMQP
 * timestamps that a client re-encodes as plain integers, a copied delivery
 * count would count against the next queue's delivery-limit, and Warren's
 * own headers already say where the message has been.
 */
export function isBrokerHeader(key: string): boolean {
  return key === 'x-death' || key === 'x-delivery-count' || key.startsWith('x-first-death-') || key.startsWith('x-last-death-');
}

export function withoutBrokerHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers)) if (!isBrokerHeader(k)) out[k] = v;
  return out;
}

export function withoutWarrenHeaders(headers: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers)) if (!k.startsWith('x-warren-')) out[k] = v;
  return out;
}

export function warrenHeaderBytes(headers: Record<string, unknown>): number {
  let n = 0;
  for (const [k, v] of Object.entries(headers)) if (k.startsWith('x-warren-')) n += Buffer.byteLength(k) + Buffer.byteLength(String(v));
  return n;
}
