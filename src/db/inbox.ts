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
  const inserted = await tx(INBOX_TABLE)
    .insert({ consumer, message_id: messageId, processed_at: now })
    .onConflict(['consumer', 'message_id'])
    .ignore()
    .returning('message_id');
  return inserted.length > 0;
}

/** Prunes records older than the retention window (longer than any replay window). */
export async function pruneInbox(db: Knex, retentionDays: number, now = Date.now()): Promise<number> {
  return db(INBOX_TABLE).where('processed_at', '<', now - retentionDays * 86_400_000).delete();
}
