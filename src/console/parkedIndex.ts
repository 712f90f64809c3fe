/** @file
 * The console's index of parked messages in its own database: rows written
 * by the indexer (one per park), read by browsing and search, marked by the
 * actions that take messages from their DLQ (replay, discard). Reading it
 * never touches a DLQ.
 */
import type { Knex } from 'knex';
import { newId } from '../domain/ids';
import type { ParkedKind } from '../ops/dlq';
import { PARKED_TABLE, SEARCH_TABLE } from '../db/migrations/console';
import { trigramMatch } from './searchMatch';
import type { ParkRecord, ParkStatus } from './parkRecord';
import {
  applyPage,
  applyParkedFilter,
  encodePageCursor,
  likeContaining,
  type PageCursor,
  type ParkedFilter,
  type ParkedListQuery,
  type SearchOptions,
} from './parkedQuery';

/** Rows inserted at most per statement (SQLite binds at most 32,766 values; a row binds 22). */
const ROWS_PER_INSERT = 200;

/**
 * Adds the parks that are not indexed yet, in one transaction; returns how
 * many were new. A copy of a park already indexed (redelivered before its
 * ack, or re-parked as it was) changes nothing.
 */
export async function indexParks(db: Knex, records: ParkRecord[], now: number): Promise<number> {
  if (records.length === 0) return 0;
  return db.transaction(async (tx) => {
    let added = 0;
    for (let i = 0; i < records.length; i += ROWS_PER_INSERT) {
      const rows = records.slice(i, i + ROWS_PER_INSERT).map((r) => toRow(r, now));
      const keys = rows.map((r) => r.park_key);
      const known = new Set((await tx(PARKED_TABLE).whereIn('park_key', keys).pluck('park_key')) as string[]);
      const fresh: typeof rows = [];
      for (const row of rows) {
        // Two copies of one park in the same batch count once.
        if (known.has(row.park_key)) continue;
        known.add(row.park_key);
        fresh.push(row);
      }
      if (fresh.length === 0) continue;
      if (usesSearchTable(tx)) for (const row of fresh) row.search_rowid = await addSearchText(tx, row.search_text);
      await tx(PARKED_TABLE).insert(fresh).onConflict('park_key').ignore();
      added += fresh.length;
    }
    return added;
  });
}

/** SQLite keeps search's trigram index in a table of its own (migration 003); PostgreSQL's is an index of the row's table. */
function usesSearchTable(db: Knex): boolean {
  return (db.client as { dialect?: unknown }).dialect !== 'postgresql';
}

/** The park's text in the trigram index, in the transaction that adds its row; the key the row keeps to find it. */
async function addSearchText(tx: Knex.Transaction, searchText: string): Promise<number> {
  const [rowid] = (await tx(SEARCH_TABLE).insert({ search_text: searchText })) as number[];
  return rowid!;
}

function toRow(r: ParkRecord, now: number): Record<string, unknown> & { park_key: string; search_text: string; search_rowid?: number } {
  return {
    id: newId(),
    park_key: r.parkKey,
    queue: r.queue,
    original_queue: r.originalQueue,
    message_id: r.messageId,
    type: r.type,
    kind: r.kind,
    attempts: r.attempts,
    reason: r.reason,
    first_failure: r.firstFailure,
    last_failure: r.lastFailure,
    // A copy that says nothing of when it was parked was parked no later than now.
    parked_at: r.parkedAt ?? now,
    since: r.since,
    indexed_at: now,
    body: r.body,
    body_encoding: r.bodyEncoding,
    headers: JSON.stringify(r.headers),
    properties: JSON.stringify(r.properties),
    search_text: r.searchText,
    replay_count: r.replayCount,
    replay_id: r.replayId,
    status: 'parked' satisfies ParkStatus,
  };
}

/** One indexed park as browsing shows it. */
export interface ParkedSummary {
  id: string;
  queue: string;
  originalQueue: string | null;
  messageId: string | null;
  type: string | null;
  kind: ParkedKind;
  attempts: number | null;
  reason: string | null;
  firstFailure: string | null;
  lastFailure: string | null;
  parkedAt: string;
  status: ParkStatus;
  /** Times it had been replayed before this park; above 0 it failed again after a replay. */
  replayCount: number;
  failedAgainAfterReplay: boolean;
}

export interface ParkedDetail extends ParkedSummary {
  body: unknown;
  bodyText: string;
  bodyEncoding: 'utf8' | 'base64';
  headers: Record<string, unknown>;
  properties: Record<string, unknown>;
  replayId: string | null;
  statusAt: string | null;
  statusBy: string | null;
  statusAction: string | null;
  /** Epoch ms; see parkedSince. */
  since: number | null;
}

export const SUMMARY_COLUMNS = [
  'id',
  'queue',
  'original_queue',
  'message_id',
  'type',
  'kind',
  'attempts',
  'reason',
  'first_failure',
  'last_failure',
  'parked_at',
  'status',
  'replay_count',
] as const;

export interface ParkedRow {
  id: string;
  queue: string;
  original_queue: string | null;
  message_id: string | null;
  type: string | null;
  kind: string;
  attempts: number | string | null;
  reason: string | null;
  first_failure: string | null;
  last_failure: string | null;
  parked_at: number | string;
  status: string;
  replay_count: number | string;
}

interface ParkedDetailRow extends ParkedRow {
  body: string;
  body_encoding: string;
  headers: string;
  properties: string;
  replay_id: string | null;
  status_at: number | string | null;
  status_by: string | null;
  status_action: string | null;
  since: number | string | null;
}

/** PostgreSQL returns bigint columns as strings. */
export function summaryOf(row: ParkedRow): ParkedSummary {
  const replayCount = Number(row.replay_count);
  return {
    id: row.id,
    queue: row.queue,
    originalQueue: row.original_queue,
    messageId: row.message_id,
    type: row.type,
    kind: row.kind as ParkedKind,
    attempts: row.attempts === null ? null : Number(row.attempts),
    reason: row.reason,
    firstFailure: row.first_failure,
    lastFailure: row.last_failure,
    parkedAt: new Date(Number(row.parked_at)).toISOString(),
    status: row.status as ParkStatus,
    replayCount,
    failedAgainAfterReplay: replayCount > 0,
  };
}

function parsedBody(text: string, encoding: string): unknown {
  if (encoding !== 'utf8') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export async function findParked(db: Knex, id: string): Promise<ParkedDetail | undefined> {
  const row = (await db(PARKED_TABLE).where({ id }).first()) as ParkedDetailRow | undefined;
  if (!row) return undefined;
  return {
    ...summaryOf(row),
    body: parsedBody(row.body, row.body_encoding),
    bodyText: row.body,
    bodyEncoding: row.body_encoding as 'utf8' | 'base64',
    headers: JSON.parse(row.headers) as Record<string, unknown>,
    properties: JSON.parse(row.properties) as Record<string, unknown>,
    replayId: row.replay_id,
    statusAt: row.status_at === null ? null : new Date(Number(row.status_at)).toISOString(),
    statusBy: row.status_by,
    statusAction: row.status_action,
    since: row.since === null ? null : Number(row.since),
  };
}

/**
 * Most rows the trigram index may hand to a search on SQLite. Fewer are read
 * by key and sorted; more mean a phrase common enough that reading the
 * newest rows in order (with LIKE) fills a page sooner than fetching them all.
 */
export const MAX_SEARCH_ROWIDS = 1000;

export interface SearchPlanOptions {
  /** False: LIKE alone, as the console searched before migration 003 (what the equivalence test and the benchmark compare against). */
  trigramIndex?: boolean;
}

/**
 * How the filter's phrase is searched: the rows a trigram index finds for
 * it, when there are at most MAX_SEARCH_ROWIDS. On SQLite the FTS5 table
 * gives the rows holding every trigram of the phrase (a superset; the LIKE
 * decides); on PostgreSQL the GIN index alone answers the LIKE itself, since
 * its planner cannot tell how common a phrase is (search_text is too wide
 * for its statistics) and would otherwise read and sort every row. A
 * phrase under three characters has no trigram.
 */
export async function searchPlan(db: Knex, f: ParkedFilter, opts: SearchPlanOptions = {}): Promise<SearchOptions> {
  if (f.q === undefined || opts.trigramIndex === false) return {};
  const phrase = f.q.toLowerCase();
  const match = trigramMatch(phrase);
  if (match === undefined) return {};
  if (usesSearchTable(db)) {
    const rowids = (await db(SEARCH_TABLE)
      .whereRaw('?? MATCH ?', [SEARCH_TABLE, match])
      .limit(MAX_SEARCH_ROWIDS + 1)
      .pluck('rowid')) as number[];
    return rowids.length > MAX_SEARCH_ROWIDS ? {} : { searchRowids: rowids };
  }
  const ids = (await db.transaction(async (tx) => {
    await tx.raw('SET LOCAL enable_seqscan = off');
    await tx.raw('SET LOCAL enable_indexscan = off');
    return tx(PARKED_TABLE)
      .whereRaw("search_text LIKE ? ESCAPE '\\'", [likeContaining(phrase)])
      .limit(MAX_SEARCH_ROWIDS + 1)
      .pluck('id');
  })) as string[];
  return ids.length > MAX_SEARCH_ROWIDS ? {} : { searchIds: ids };
}

export interface ParkedPage {
  items: ParkedSummary[];
  nextCursor: string | null;
}

/** A page of the parked messages the query selects, newest park first. */
export async function searchParked(db: Knex, query: ParkedListQuery, after?: PageCursor, opts: SearchPlanOptions = {}): Promise<ParkedPage> {
  const plan = await searchPlan(db, query, opts);
  const page = (k: Knex) => applyPage(applyParkedFilter(k(PARKED_TABLE).select(...SUMMARY_COLUMNS), query, plan), query.limit + 1, after);
  // PostgreSQL judges every LIKE rare, and would read and sort all the rows a common phrase or reason selects:
  // without a sort it reads them newest first by index and stops at the page's end. Rows in hand are few to sort.
  const ordered = !usesSearchTable(db) && !plan.searchIds && opts.trigramIndex !== false;
  const rows = (
    ordered
      ? await db.transaction(async (tx) => {
          await tx.raw('SET LOCAL enable_sort = off');
          return page(tx);
        })
      : await page(db)
  ) as ParkedRow[];
  const items = rows.slice(0, query.limit).map(summaryOf);
  const last = rows.length > query.limit ? rows[query.limit - 1] : undefined;
  return { items, nextCursor: last ? encodePageCursor({ parkedAt: Number(last.parked_at), id: last.id }) : null };
}

/** How many parked messages the filter selects, in all and per queue. */
export async function countSelected(db: Knex, filter: ParkedFilter): Promise<{ total: number; byQueue: Record<string, number> }> {
  const rows = (await applyParkedFilter(db(PARKED_TABLE).select('queue').count({ n: '*' }).groupBy('queue'), filter, await searchPlan(db, filter))) as {
    queue: string;
    n: number | string;
  }[];
  const byQueue = Object.fromEntries(rows.map((r) => [r.queue, Number(r.n)]));
  return { total: rows.reduce((sum, r) => sum + Number(r.n), 0), byQueue };
}
