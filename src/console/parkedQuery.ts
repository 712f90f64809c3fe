/** @file
 * Search and filters over the index of parked messages: the query string's
 * schema, and the one function that turns a filter into SQL both SQLite and
 * PostgreSQL run (LIKE with an explicit escape, on text lower-cased when it
 * was indexed), pure apart from the query builder it is handed. The LIKE
 * decides what matches; a trigram index only spares reading the rows that
 * cannot (pg_trgm's GIN index, which PostgreSQL's planner picks for the
 * LIKE itself; on SQLite the FTS5 table of migration 003, asked first by
 * searchPlan in parkedIndex.ts).
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { PARK_KINDS } from '../consume/retry';

const isoTime = z
  .string()
  .refine(
    (s) => /^\d{4}-\d\d-\d\d(T[\d:.]+(Z|[+-]\d\d:\d\d)?)?$/.test(s) && Number.isFinite(Date.parse(s)),
    'must be an ISO-8601 time, e.g. 2026-01-31T12:00:00Z',
  )
  .transform((s) => Date.parse(s));

const text = (max: number) => z.string().min(1, 'must not be empty').max(max, `must be at most ${max} characters`);

export const PARKED_STATUSES = ['parked', 'replayed', 'discarded', 'gone'] as const;

/** What selects parked messages, in a query string or in an action's body. */
export const parkedFilter = z.strictObject({
  /** Words in the body or the headers (one phrase, case-insensitive). */
  q: text(200).optional(),
  queue: text(255).optional(),
  kind: z.enum([...PARK_KINDS, 'unknown']).optional(),
  /** Contained in the reason (x-warren-error, or x-death's), case-insensitive. */
  reason: text(200).optional(),
  /** Parked at or after. */
  from: isoTime.optional(),
  /** Parked before. */
  to: isoTime.optional(),
  status: z.enum([...PARKED_STATUSES, 'any']).default('parked'),
  failedAgainAfterReplay: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .or(z.boolean())
    .optional(),
});
export type ParkedFilter = z.output<typeof parkedFilter>;

export const PAGE_LIMIT = { min: 1, max: 100, default: 20 } as const;

/** A page's size: text in a query string, described to OpenAPI as the integer it is parsed into. */
export const pageLimit = z.coerce
  .number()
  .int('must be an integer')
  .min(PAGE_LIMIT.min, `must be at least ${PAGE_LIMIT.min}`)
  .max(PAGE_LIMIT.max, `must be at most ${PAGE_LIMIT.max}`)
  .meta({
    description: `an integer from ${PAGE_LIMIT.min} to ${PAGE_LIMIT.max} (default ${PAGE_LIMIT.default})`,
    openapi: { type: 'integer', minimum: PAGE_LIMIT.min, maximum: PAGE_LIMIT.max, default: PAGE_LIMIT.default },
  })
  .default(PAGE_LIMIT.default);

export const parkedListQuery = parkedFilter.extend({
  limit: pageLimit,
  before: z.string().max(200).optional().meta({ description: 'the nextCursor of the previous page' }),
});
export type ParkedListQuery = z.output<typeof parkedListQuery>;

/** `%`, `_` and the escape itself match only themselves. */
export function likeContaining(value: string): string {
  return `%${value.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export interface SearchOptions {
  /**
   * SQLite: the rows (their search_rowid) the trigram index found for the
   * phrase, when they are few enough to read one by one (searchPlan in
   * parkedIndex.ts). Without it the LIKE alone reads every row the other
   * filters leave, newest first, which finds a common phrase's first page
   * after a few rows.
   */
  searchRowids?: readonly number[];
  /** PostgreSQL: the ids of the rows whose search text holds the phrase, as its GIN index found them. */
  searchIds?: readonly string[];
}

/** Narrows `q` (a query on the parked messages table) to the messages the filter selects. */
export function applyParkedFilter<Q extends Knex.QueryBuilder>(q: Q, f: ParkedFilter, opts: SearchOptions = {}): Q {
  // With the trigram index's rows in hand, reading them by key beats any other index: `+` keeps SQLite's planner off the others.
  const equals = (column: string, value: string) => (opts.searchRowids ? q.whereRaw('+?? = ?', [column, value]) : q.where(column, value));
  if (f.status !== 'any') equals('status', f.status);
  if (f.queue !== undefined) equals('queue', f.queue);
  if (f.kind !== undefined) q.where('kind', f.kind);
  if (f.q !== undefined) {
    const phrase = f.q.toLowerCase();
    q.whereRaw("search_text LIKE ? ESCAPE '\\'", [likeContaining(phrase)]);
    if (opts.searchRowids) q.whereIn('search_rowid', opts.searchRowids);
    if (opts.searchIds) q.whereIn('id', opts.searchIds);
  }
  if (f.reason !== undefined) q.whereRaw("LOWER(reason) LIKE ? ESCAPE '\\'", [likeContaining(f.reason.toLowerCase())]);
  if (f.from !== undefined) q.where('parked_at', '>=', f.from);
  if (f.to !== undefined) q.where('parked_at', '<', f.to);
  if (f.failedAgainAfterReplay !== undefined) q.where('replay_count', f.failedAgainAfterReplay ? '>' : '=', 0);
  return q;
}

/** Pages run newest park first; a cursor is the last item's park time and id, opaque to clients. */
export interface PageCursor {
  parkedAt: number;
  id: string;
}

export function encodePageCursor(c: PageCursor): string {
  return Buffer.from(JSON.stringify([c.parkedAt, c.id]), 'utf8').toString('base64url');
}

export function decodePageCursor(cursor: string): PageCursor | undefined {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (!Array.isArray(value) || value.length !== 2) return undefined;
    const [parkedAt, id] = value as unknown[];
    return typeof parkedAt === 'number' && Number.isInteger(parkedAt) && typeof id === 'string' && id.length <= 36 ? { parkedAt, id } : undefined;
  } catch {
    return undefined;
  }
}

/** Newest first, from after the cursor. */
export function applyPage<Q extends Knex.QueryBuilder>(q: Q, limit: number, after?: PageCursor): Q {
  if (after)
    q.where((w) => void w.where('parked_at', '<', after.parkedAt).orWhere((s) => void s.where('parked_at', after.parkedAt).andWhere('id', '<', after.id)));
  q.orderBy([
    { column: 'parked_at', order: 'desc' },
    { column: 'id', order: 'desc' },
  ]).limit(limit);
  return q;
}
