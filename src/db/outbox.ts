import type { Knex } from 'knex';
import type { OutgoingEvent } from '../domain/messages';

/**
 * The transactional outbox: events are written in the same transaction as
 * the change that caused them, and relayed to RabbitMQ later
 * (src/broker/relay.ts). A row is marked sent only after its confirm arrived
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
  schema_version: string;
  created_at: number;
  attempts: number;
}

/** Writes events inside the caller's transaction. */
export async function enqueueEvents(tx: Knex.Transaction, events: OutgoingEvent[]): Promise<void> {
  if (events.length === 0) return;
  await tx(OUTBOX_TABLE).insert(
    events.map((e) => ({
      message_id: e.messageId,
      type: e.type,
      exchange: e.exchange,
      routing_key: e.routingKey,
      payload: e.payload,
      correlation_id: e.correlationId,
      traceparent: e.traceparent,
      schema_version: e.schemaVersion,
      created_at: e.createdAt.getTime(),
    })),
  );
}

/** Rows written but not yet confirmed by the broker. */
export async function countBacklog(db: Knex): Promise<number> {
  const row = await db(OUTBOX_TABLE).whereNull('sent_at').count<{ n: number | string }[]>({ n: '*' }).first();
  return Number(row?.n ?? 0);
}

/**
 * Claims up to `limit` unsent rows for `relayId` with one conditional UPDATE
 * that both SQLite and PostgreSQL understand. A claim older than
 * `claimTimeoutMs` (a relay that died) may be taken over. Returns the rows
 * this relay now holds.
 */
export async function claimBatch(db: Knex, relayId: string, limit: number, claimTimeoutMs: number, now = Date.now()): Promise<OutboxRow[]> {
  const staleBefore = now - claimTimeoutMs;
  const claimable = (q: Knex.QueryBuilder) =>
    q.whereNull('sent_at').andWhere((w) => w.whereNull('claimed_by').orWhere('claimed_at', '<', staleBefore));
  const candidates = await claimable(db(OUTBOX_TABLE).select('seq')).orderBy('seq').limit(limit);
  if (candidates.length === 0) return [];
  const seqs = candidates.map((r: { seq: number }) => r.seq);
  await claimable(db(OUTBOX_TABLE).whereIn('seq', seqs)).update({ claimed_by: relayId, claimed_at: now });
  return db(OUTBOX_TABLE)
    .select('seq', 'message_id', 'type', 'exchange', 'routing_key', 'payload', 'correlation_id', 'traceparent', 'schema_version', 'created_at', 'attempts')
    .whereIn('seq', seqs)
    .andWhere({ claimed_by: relayId, claimed_at: now })
    .whereNull('sent_at')
    .orderBy('seq');
}

export async function markSent(db: Knex, relayId: string, seqs: number[], now = Date.now()): Promise<void> {
  for (const chunk of chunks(seqs, 500)) {
    await db(OUTBOX_TABLE).whereIn('seq', chunk).andWhere({ claimed_by: relayId }).update({ sent_at: now, claimed_by: null, claimed_at: null });
  }
}

/** Gives rows back to the pool after a failed publish, recording why. */
export async function releaseClaims(db: Knex, relayId: string, seqs: number[], error: string): Promise<void> {
  for (const chunk of chunks(seqs, 500)) {
    await db(OUTBOX_TABLE)
      .whereIn('seq', chunk)
      .andWhere({ claimed_by: relayId })
      .update({ claimed_by: null, claimed_at: null, last_error: error.slice(0, 1000), attempts: db.raw('attempts + 1') });
  }
}

export async function pruneSent(db: Knex, retainMs: number, now = Date.now()): Promise<number> {
  return db(OUTBOX_TABLE).whereNotNull('sent_at').andWhere('sent_at', '<', now - retainMs).delete();
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
