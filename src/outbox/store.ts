import type { Knex } from 'knex';
import type { OutgoingEvent } from '../domain/messages';

/**
 * The transactional outbox: events are written in the same transaction as
 * the change that caused them, and relayed to RabbitMQ later
 * (src/outbox/relay.ts). A row is marked sent only after its confirm arrived
 * and no return did.
 */
export const OUTBOX_TABLE = 'outbox';

export interface OutboxRow {
  seq: number;
  message_id: string;
  type: string;
  exchange: string;
  routing_key: string;
  payload: string;
  correlation_id: string | null;
  traceparent: string;
  /** The trace's vendor entries (W3C tracestate), when the request had any. */
  tracestate: string | null;
  schema_version: string;
  created_at: number;
  attempts: number;
}

/** The outbox rows of events, as written (for a caller that merges inserts, src/db/groupCommit.ts). */
export function outboxRows(events: OutgoingEvent[]): Record<string, unknown>[] {
  return events.map((e) => ({
    message_id: e.messageId,
    type: e.type,
    exchange: e.exchange,
    routing_key: e.routingKey,
    payload: e.payload,
    correlation_id: e.correlationId,
    traceparent: e.traceparent,
    tracestate: e.tracestate ?? null,
    schema_version: e.schemaVersion,
    created_at: e.createdAt.getTime(),
  }));
}

/** Writes events inside the caller's transaction. */
export async function enqueueEvents(tx: Knex.Transaction, events: OutgoingEvent[]): Promise<void> {
  if (events.length === 0) return;
  await tx(OUTBOX_TABLE).insert(outboxRows(events));
}

/** Rows written but not yet confirmed by the broker. */
export async function countBacklog(db: Knex): Promise<number> {
  const row = await db(OUTBOX_TABLE).whereNull('sent_at').count<{ n: number | string }[]>({ n: '*' }).first();
  return Number(row?.n ?? 0);
}

const CLAIMED_COLUMNS = [
  'seq',
  'message_id',
  'type',
  'exchange',
  'routing_key',
  'payload',
  'correlation_id',
  'traceparent',
  'tracestate',
  'schema_version',
  'created_at',
  'attempts',
];

/**
 * The database's clock in epoch milliseconds, as SQL. Claims and marks are
 * stamped, claims judged stale and sent rows judged old enough to prune, by
 * this one clock, shared by every relay of the outbox, never by a process's
 * own: a host whose clock runs 30 s fast would otherwise take over claims
 * still in flight. The one expression the two databases spell differently
 * (SQLite's julianday is ms-precise; PostgreSQL's statement_timestamp is
 * fixed for the statement, like SQLite's 'now').
 */
export function databaseNowMs(db: Knex): string {
  return isPostgres(db) ? 'CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000 AS BIGINT)' : "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
}

function isPostgres(db: Knex): boolean {
  return (db.client as { dialect?: unknown }).dialect === 'postgresql';
}

/**
 * Claims up to `limit` unsent rows for `relayId` with one conditional
 * `UPDATE ... RETURNING` that SQLite (3.35+) and PostgreSQL both run as it
 * is: the claim and the rows it took are one statement, and the outer
 * condition is checked again on each row as it is updated, so of two relays
 * picking the same rows at once one takes them and the other takes none
 * (SQLite has one writer at a time).
 * On PostgreSQL the rows are picked `FOR UPDATE SKIP LOCKED`: a relay passes
 * over the rows another relay's claim holds and takes the next ones, where
 * it would otherwise wait for that claim to commit and then find nothing
 * left, so several relays drain one outbox side by side (bench/scenarios/relays.ts).
 * A claim older than `claimTimeoutMs` by the database's clock (a relay that
 * died) may be taken over.
 * Returns the rows this relay now holds, by seq.
 */
export async function claimBatch(db: Knex, relayId: string, limit: number, claimTimeoutMs: number): Promise<OutboxRow[]> {
  const now = databaseNowMs(db);
  // Rows never sent, unclaimed or held by a claim older than the timeout.
  const claimable = `sent_at IS NULL AND (claimed_by IS NULL OR claimed_at < ${now} - ?)`;
  const oldest = db(OUTBOX_TABLE).select('seq').whereRaw(claimable, [claimTimeoutMs]).orderBy('seq').limit(limit);
  const update = db(OUTBOX_TABLE).update({ claimed_by: relayId, claimed_at: db.raw(now) });
  // As an array, picked once before the update: as `IN (subquery)` the planner
  // may run the pick again for each row, and a row this very statement has
  // just claimed counts as locked to it, so each rerun would skip on to further rows.
  const claiming = isPostgres(db) ? update.whereRaw('seq = ANY(ARRAY(?))', [oldest.forUpdate().skipLocked()]) : update.whereIn('seq', oldest);
  const rows = (await claiming.andWhereRaw(claimable, [claimTimeoutMs]).returning(CLAIMED_COLUMNS)) as OutboxRow[];
  // RETURNING promises no order; publish in the order the rows were written.
  return rows.map((r) => ({ ...r, seq: Number(r.seq) })).sort((a, b) => a.seq - b.seq);
}

/** Marks rows sent, by the database's clock (as claims are), if this relay still holds them. */
export async function markSent(db: Knex, relayId: string, seqs: number[]): Promise<void> {
  for (const chunk of chunks(seqs, 1000)) {
    await db(OUTBOX_TABLE)
      .whereIn('seq', chunk)
      .andWhere({ claimed_by: relayId })
      .update({ sent_at: db.raw(databaseNowMs(db)), claimed_by: null, claimed_at: null });
  }
}

/** Gives rows back to the pool after a failed publish, recording why. */
export async function releaseClaims(db: Knex, relayId: string, seqs: number[], error: string): Promise<void> {
  for (const chunk of chunks(seqs, 1000)) {
    await db(OUTBOX_TABLE)
      .whereIn('seq', chunk)
      .andWhere({ claimed_by: relayId })
      .update({ claimed_by: null, claimed_at: null, last_error: error.slice(0, 1000), attempts: db.raw('attempts + 1') });
  }
}

/** Deletes rows sent more than `retainMs` ago by the database's clock, the one their marks were stamped by. */
export async function pruneSent(db: Knex, retainMs: number): Promise<number> {
  return db(OUTBOX_TABLE)
    .whereNotNull('sent_at')
    .andWhereRaw(`sent_at < ${databaseNowMs(db)} - ?`, [retainMs])
    .delete();
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
