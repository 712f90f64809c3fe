import { Int64Header } from '../broker/int64';
import { RETURN_EXCHANGE } from '../topology/definitions';

/**
 * What Warren does with headers it did not write. A foreign publisher may
 * send any header table amqplib can decode, and a retry or park copy is
 * encoded again: a table nested a few thousand levels deep (about 15 KB)
 * overflows the stack in amqplib's recursive encoder, and one over 64 KiB
 * overflows its scratch buffer. So a delivery's foreign headers are bounded
 * (a delivery outside the bounds is parked as permanent), and a copy carries
 * only the headers within them.
 */

/** Deepest nesting (tables and arrays) a foreign header may have. */
export const MAX_FOREIGN_HEADER_DEPTH = 16;
/** Most bytes a delivery's foreign headers may take together, encoded. */
export const MAX_FOREIGN_HEADER_BYTES = 16 * 1024;

export function isWarrenHeader(key: string): boolean {
  return key.startsWith('x-warren-');
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

/**
 * The headers of a delivery as far as Warren trusts them. Warren's own
 * x-warren-* headers come back only on a retry (dead-lettered from a delay
 * queue through `warren.return`) or a replay (`warren dlq replay` publishes
 * there too, without them); anything else arrives through a service
 * exchange, so x-warren-* headers on it were forged (an attempts count that
 * parks a first delivery as exhausted, an original exchange that a replay
 * would trust) and are dropped before anything reads them.
 */
export function trustedHeaders(headers: Record<string, unknown>, arrivedThrough: string): Record<string, unknown> {
  if (arrivedThrough === RETURN_EXCHANGE) return headers;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(headers)) if (!isWarrenHeader(k)) out[k] = v;
  return out;
}

/**
 * amqplib encodes a number as a double only when it has a fraction (below
 * 2^50) or is at least 2^63, and as an integer otherwise: a decoded NaN,
 * -Infinity, a double below -2^63 or one between 2^50 and 2^52 with a
 * fraction makes it throw.
 */
function encodableNumber(n: number): boolean {
  return n >= 2 ** 63 || (Math.abs(n) < 2 ** 50 && !Number.isInteger(n)) || (Number.isInteger(n) && n >= -(2 ** 63) && n < 2 ** 63);
}

/** The width amqplib picks for a number: a double, or the narrowest signed integer that holds it. */
function numberBytes(n: number): number {
  if (n >= 2 ** 63 || (Math.abs(n) < 2 ** 50 && !Number.isInteger(n))) return 8;
  if (n >= -128 && n < 128) return 1;
  if (n >= -0x8000 && n < 0x8000) return 2;
  if (n >= -0x80000000 && n < 0x80000000) return 4;
  return 8;
}

const isUint = (n: unknown, max: number): boolean => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= max;

/**
 * Encoded size (after the tag) of a `{ '!': type, value }` table as amqplib
 * decodes a timestamp or a decimal, or undefined for any other table with a
 * "!" field: amqplib would encode that as the type it names and may throw.
 */
function typedBytes(v: { '!': unknown; value?: unknown }): number | undefined {
  if (v['!'] === 'timestamp' && isUint(v.value, Number.MAX_SAFE_INTEGER)) return 8;
  const d = v.value as { places?: unknown; digits?: unknown } | null | undefined;
  if (v['!'] === 'decimal' && typeof d === 'object' && d !== null && isUint(d.places, 255) && isUint(d.digits, 0xffffffff)) return 5;
  return undefined;
}

export interface HeaderMeasure {
  /** Encoded bytes of the value, its tag included; counted only up to just past the byte limit. */
  bytes: number;
  /** Why it cannot be copied: too deep, over the byte limit, or not encodable. */
  problem?: string;
}

/**
 * Measures one header value as amqplib encodes it, walking it with a stack
 * of its own (no recursion for the value to overflow) and stopping as soon
 * as it goes deeper than `maxDepth` or past `maxBytes`.
 */
export function measureHeader(value: unknown, maxBytes: number, maxDepth = MAX_FOREIGN_HEADER_DEPTH): HeaderMeasure {
  const pending: { value: unknown; depth: number; inArray: boolean }[] = [{ value, depth: 0, inArray: false }];
  let bytes = 0;
  while (pending.length > 0) {
    const item = pending.pop()!;
    const v = item.value;
    if (v === undefined) {
      // amqplib skips an undefined table entry, but throws on one in an array.
      if (item.inArray) return { bytes, problem: 'holds an undefined array element' };
      continue;
    }
    bytes += 1; // the type tag
    if (typeof v === 'string') bytes += 4 + Buffer.byteLength(v);
    else if (typeof v === 'number') {
      if (!encodableNumber(v)) return { bytes, problem: `holds the number ${v}, which amqplib cannot encode` };
      bytes += numberBytes(v);
    } else if (typeof v === 'boolean') bytes += 1;
    else if (v === null) bytes += 0;
    else if (Buffer.isBuffer(v)) bytes += 4 + v.length;
    else if (v instanceof Int64Header) bytes += 8;
    else if (typeof v !== 'object') return { bytes, problem: `holds a value of type ${typeof v}` };
    else if (Object.prototype.hasOwnProperty.call(v, '!')) {
      const size = typedBytes(v as { '!': unknown });
      if (size === undefined) return { bytes, problem: 'holds a table with a "!" field that is not a timestamp or a decimal' };
      bytes += size;
    } else {
      const depth = item.depth + 1;
      if (depth > maxDepth) return { bytes, problem: `is nested more than ${maxDepth} levels deep` };
      bytes += 4;
      if (Array.isArray(v)) {
        for (const element of v) pending.push({ value: element, depth, inArray: true });
      } else {
        for (const [key, element] of Object.entries(v)) {
          const keyBytes = Buffer.byteLength(key);
          if (keyBytes > 255) return { bytes, problem: 'holds a field name longer than 255 bytes' };
          if (element !== undefined) bytes += 1 + keyBytes;
          pending.push({ value: element, depth, inArray: false });
        }
      }
    }
    if (bytes > maxBytes) return { bytes, problem: `is larger than ${maxBytes} bytes` };
  }
  return { bytes };
}

export interface BoundedHeaders {
  /** The foreign headers a copy may carry. */
  kept: Record<string, unknown>;
  /** Each header left out, and why. */
  dropped: { name: string; why: string }[];
}

/**
 * Splits a delivery's foreign headers (neither Warren's nor the broker's)
 * into those a copy may carry and those it must not: each one too deep or
 * not encodable, and, in order, each one that would take the total past
 * MAX_FOREIGN_HEADER_BYTES.
 */
export function boundForeignHeaders(headers: Record<string, unknown>): BoundedHeaders {
  const kept: Record<string, unknown> = {};
  const dropped: BoundedHeaders['dropped'] = [];
  let total = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (isWarrenHeader(name) || isBrokerHeader(name) || value === undefined) continue;
    const nameBytes = 1 + Buffer.byteLength(name);
    const m = measureHeader(value, MAX_FOREIGN_HEADER_BYTES);
    if (m.problem) {
      dropped.push({ name, why: m.problem });
    } else if (total + nameBytes + m.bytes > MAX_FOREIGN_HEADER_BYTES) {
      dropped.push({ name, why: `takes the headers past ${MAX_FOREIGN_HEADER_BYTES} bytes` });
    } else {
      total += nameBytes + m.bytes;
      kept[name] = value;
    }
  }
  return { kept, dropped };
}

/** One line naming every header dropped and why (header names cut to 64 characters, at most 5 named). */
export function describeDropped(dropped: BoundedHeaders['dropped']): string {
  const named = dropped.slice(0, 5).map((d) => `${JSON.stringify(d.name.length > 64 ? `${d.name.slice(0, 64)}...` : d.name)} ${d.why}`);
  const more = dropped.length > 5 ? `; and ${dropped.length - 5} more` : '';
  return `header ${named.join('; header ')}${more}`;
}

/** Why a delivery's foreign headers are outside the bounds, or undefined when they are within them. */
export function foreignHeaderProblem(headers: Record<string, unknown>): string | undefined {
  const { dropped } = boundForeignHeaders(headers);
  return dropped.length > 0 ? describeDropped(dropped) : undefined;
}
