/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the two headers
 * every message and traced request carries, read and written by these rules
 * whether or not the process records spans (src/observability/tracing.ts).
 * Pure: no SDK, so the path with tracing off costs what it did before.
 */
export interface TraceHeaders {
  traceparent: string;
  /** Vendors' own entries, passed on as received; absent when there were none. */
  tracestate?: string;
}

export interface TraceParent {
  traceId: string;
  /** The id of the caller's span: the parent of the next span. */
  spanId: string;
  /** The trace-flags byte; bit 0 is `sampled`. */
  flags: number;
}

const TRACEPARENT_00 = /^(00)-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
// A later version keeps these four fields first; what it adds comes after a dash.
const TRACEPARENT_LATER = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ALL_ZERO = /^0+$/;

/** The most entries a tracestate may have; one with more is dropped whole, as the spec allows. */
export const MAX_TRACESTATE_MEMBERS = 32;
/** Propagators must pass on at least 512 characters; Warren keeps that much and the column holds it. */
export const MAX_TRACESTATE_LENGTH = 512;
// key = simple-key / tenant-id@system-id; value = printable ASCII but `,` and `=`, not ending in a space.
const TRACESTATE_MEMBER =
  /^(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/**
 * A traceparent header's fields, or undefined when it is not one: wrong
 * shape, upper-case hex, version `ff`, an all-zero trace or parent id.
 * Version 00 is exactly 55 characters; a later version may carry more after
 * the four fields, which are read as version 00's.
 */
export function parseTraceparent(header: unknown): TraceParent | undefined {
  if (typeof header !== 'string' || header.length < 55 || header.length > 512) return undefined;
  const m = (header.startsWith('00-') ? TRACEPARENT_00 : TRACEPARENT_LATER).exec(header);
  if (!m || m[1] === 'ff') return undefined;
  const [, , traceId, spanId, flags] = m as unknown as [string, string, string, string, string];
  if (ALL_ZERO.test(traceId) || ALL_ZERO.test(spanId)) return undefined;
  return { traceId, spanId, flags: parseInt(flags, 16) };
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** Version 00 of the header, with only the `sampled` flag (the others are not Warren's to claim). */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

/**
 * A tracestate header as it should be passed on: the members trimmed and
 * empty ones dropped, in their order, or undefined when there is none or it
 * cannot be trusted (a malformed member, a key twice, more than 32 members,
 * longer than 512 characters), which the spec lets a vendor discard whole.
 * Several header lines arrive as an array and are one list.
 */
export function parseTracestate(header: unknown): string | undefined {
  const text = Array.isArray(header) ? header.filter((h): h is string => typeof h === 'string').join(',') : header;
  if (typeof text !== 'string' || text.length === 0) return undefined;
  const members = text
    .split(',')
    .map((m) => m.trim())
    .filter((m) => m !== '');
  if (members.length === 0 || members.length > MAX_TRACESTATE_MEMBERS) return undefined;
  const keys = new Set<string>();
  for (const member of members) {
    if (!TRACESTATE_MEMBER.test(member)) return undefined;
    const key = member.slice(0, member.indexOf('='));
    if (keys.has(key)) return undefined;
    keys.add(key);
  }
  const joined = members.join(',');
  return joined.length > MAX_TRACESTATE_LENGTH ? undefined : joined;
}

/**
 * The trace context a caller sent, when its traceparent is valid; its
 * tracestate only with it (a tracestate without a valid traceparent belongs
 * to no trace, and is ignored).
 */
export function incomingTrace(traceparent: unknown, tracestate: unknown): { parent: TraceParent; headers: TraceHeaders } | undefined {
  const parent = parseTraceparent(traceparent);
  if (!parent) return undefined;
  const state = parseTracestate(tracestate);
  // Passed on as version 00, the one Warren speaks: a later version's extra fields are not ours to vouch for.
  const header = (traceparent as string).startsWith('00-') ? (traceparent as string) : `00-${parent.traceId}-${parent.spanId}-${hex2(parent.flags)}`;
  return { parent, headers: { traceparent: header, ...(state ? { tracestate: state } : {}) } };
}
