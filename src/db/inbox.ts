import type { Knex } from 'knex';

/**
 * The idempotency record of consumed messages: (consumer, message_id),
 * written in the same transaction as the effect and only with it.
 */
export const INBOX_TABLE = 'processed_messages';

export function createInboxTable(knex: Knex): Knex.SchemaBuilder {
  return knex.schema.createTable(INBOX_TABLE, (t) => {
    t.string('consumer', 100).notNullable();
    t.string('message_id', 100).notNullable();
    t.bigInteger('processed_at').notNullable();
    t.primary(['consumer', 'message_id']);
    t.index(['processed_at']);
  });
}

/**
 * Claims a message for a consumer inside `tx`. Returns false when it was
 * already processed (its effect is committed; only the ack is missing).
 */
export async function claimInboxRecord(tx: Knex.Transaction, consumer: string, messageId: string, now = Date.now()): Promise<boolean> {
  return (await claimInboxRecords(tx, consumer, [messageId], now)).has(messageId);
}

/**
 * Rows per INSERT: knex writes a multi-row insert for SQLite as a compound
 * SELECT, which may have at most 500 terms (SQLITE_MAX_COMPOUND_SELECT).
 */
const CLAIM_CHUNK = 500;

/**
 * Claims several messages at once inside `tx`, one multi-row
 * `INSERT ... ON CONFLICT DO NOTHING RETURNING message_id` (SQLite >= 3.35
 * and PostgreSQL alike): the ids it returns are the ones new to this
 * consumer, the others were applied before. An id given twice is claimed once.
 */
export async function claimInboxRecords(tx: Knex.Transaction, consumer: string, messageIds: readonly string[], now = Date.now()): Promise<Set<string>> {
  const ids = [...new Set(messageIds)];
  const claimed = new Set<string>();
  for (let i = 0; i < ids.length; i += CLAIM_CHUNK) {
    const rows: { message_id: string }[] = await tx(INBOX_TABLE)
      .insert(ids.slice(i, i + CLAIM_CHUNK).map((id) => ({ consumer, message_id: id, processed_at: now })))
      .onConflict(['consumer', 'message_id'])
      .ignore()
      .returning('message_id');
    for (const row of rows) claimed.add(row.message_id);
  }
  return claimed;
}

/** Prunes records older than the retention window (longer than any replay window). */
export async function pruneInbox(db: Knex, retentionDays: number, now = Date.now()): Promise<number> {
  return db(INBOX_TABLE)
    .where('processed_at', '<', now - retentionDays * 86_400_000)
    .delete();
}

const DAY_MS = 86_400_000;

/**
 * How old a parked message may be and still be replayed safely: the
 * retention less a margin (a day, or a tenth of a shorter retention) for
 * the replayed copy's wait in its work queue and for clocks that differ
 * between the operator's host and the workers'. Past it, the inbox record
 * that makes a second delivery harmless may already be pruned.
 */
export function replaySafeAgeMs(retentionDays: number): number {
  const retention = retentionDays * DAY_MS;
  return retention - Math.min(DAY_MS, retention / 10);
}
