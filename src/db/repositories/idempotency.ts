import type { Knex } from 'knex';

/** The first response to an Idempotency-Key, replayed to every repeat within the TTL. */
export interface IdempotencyRecord {
  caller: string;
  key: string;
  requestHash: string;
  status: number;
  response: string;
  createdAt: number;
}

interface IdempotencyRow {
  caller: string;
  key: string;
  request_hash: string;
  status: number;
  response: string;
  created_at: number | string;
}

/** A record older than `notBefore` has expired and counts as absent. */
export async function findIdempotencyRecord(db: Knex, caller: string, key: string, notBefore: number): Promise<IdempotencyRecord | undefined> {
  const row = await db<IdempotencyRow>('idempotency_keys').where({ caller, key }).andWhere('created_at', '>=', notBefore).first();
  if (!row) return undefined;
  return {
    caller: row.caller,
    key: row.key,
    requestHash: row.request_hash,
    status: Number(row.status),
    response: row.response,
    createdAt: Number(row.created_at),
  };
}

/**
 * Written in the same transaction as the effect. An expired record under the
 * same key is removed first; a live one (a concurrent twin that committed)
 * makes the insert fail with a unique violation, which rolls the effect back.
 */
export async function saveIdempotencyRecord(tx: Knex.Transaction, record: IdempotencyRecord, notBefore: number): Promise<void> {
  await tx(IDEMPOTENCY_TABLE).where({ caller: record.caller, key: record.key }).andWhere('created_at', '<', notBefore).delete();
  await tx(IDEMPOTENCY_TABLE).insert(idempotencyRow(record));
}

export const IDEMPOTENCY_TABLE = 'idempotency_keys';

/**
 * The record as a row, for a write that inserts it merged with others: the
 * insert fails on any record under the key, live or expired, and the write
 * is then done alone with saveIdempotencyRecord.
 */
export function idempotencyRow(record: IdempotencyRecord): Record<string, unknown> {
  return {
    caller: record.caller,
    key: record.key,
    request_hash: record.requestHash,
    status: record.status,
    response: record.response,
    created_at: record.createdAt,
  };
}

export async function pruneIdempotencyRecords(db: Knex, notBefore: number): Promise<number> {
  return db('idempotency_keys').where('created_at', '<', notBefore).delete();
}
