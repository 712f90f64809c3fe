import crypto from 'node:crypto';
import type { Knex } from 'knex';

/**
 * The first response to an Idempotency-Key, replayed to every repeat within the TTL.
 * `key` and `response` are in clear here; the database holds neither (see sealedFields).
 */
export interface IdempotencyRecord {
  caller: string;
  key: string;
  requestHash: string;
  status: number;
  response: string;
  createdAt: number;
}

// A type, not an interface: it is handed to knex and the group commit as a plain row.
type IdempotencyRow = {
  caller: string;
  /** The key's lookup hash, never the key. */
  key: string;
  request_hash: string;
  status: number;
  /** The response sealed under a key derived from the Idempotency-Key (SEALED_PREFIX...). */
  response: string;
  created_at: number | string;
};

const SEALED_PREFIX = 'v1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * A sign-up's response holds the new user's token, so the record must not be
 * a usable token at rest. Both what the row is found by and what decrypts its
 * response are derived (HKDF-SHA256, the caller as salt) from the
 * Idempotency-Key, which only the client holds: the row has a one-way lookup
 * hash and an AES-256-GCM ciphertext, and the key that opens it is never stored.
 */
function derive(caller: string, key: string): { lookup: string; sealKey: Buffer } {
  const lookup = Buffer.from(crypto.hkdfSync('sha256', key, caller, 'warren idempotency-key lookup', 32)).toString('hex');
  const sealKey = Buffer.from(crypto.hkdfSync('sha256', key, caller, 'warren idempotency-key response', 32));
  return { lookup, sealKey };
}

// The status is authenticated with the response, so a row edited in place does not replay as another answer.
function seal(sealKey: Buffer, status: number, response: string): string {
  const iv = crypto.randomBytes(IV_BYTES);
  const cipher = crypto.createCipheriv('aes-256-gcm', sealKey, iv);
  cipher.setAAD(Buffer.from(String(status)));
  const body = Buffer.concat([cipher.update(response, 'utf8'), cipher.final()]);
  return SEALED_PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

function open(sealKey: Buffer, status: number, sealed: string): string {
  if (!sealed.startsWith(SEALED_PREFIX)) throw new Error('an idempotency record holds a response that is not sealed');
  const raw = Buffer.from(sealed.slice(SEALED_PREFIX.length), 'base64url');
  const decipher = crypto.createDecipheriv('aes-256-gcm', sealKey, raw.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(String(status)));
  decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
}

/** A record older than `notBefore` has expired and counts as absent. */
export async function findIdempotencyRecord(db: Knex, caller: string, key: string, notBefore: number): Promise<IdempotencyRecord | undefined> {
  const { lookup, sealKey } = derive(caller, key);
  const row = await db<IdempotencyRow>(IDEMPOTENCY_TABLE).where({ caller, key: lookup }).andWhere('created_at', '>=', notBefore).first();
  if (!row) return undefined;
  const status = Number(row.status);
  return {
    caller: row.caller,
    key,
    requestHash: row.request_hash,
    status,
    response: open(sealKey, status, row.response),
    createdAt: Number(row.created_at),
  };
}

/**
 * Written in the same transaction as the effect. An expired record under the
 * same key is removed first; a live one (a concurrent twin that committed)
 * makes the insert fail with a unique violation, which rolls the effect back.
 */
export async function saveIdempotencyRecord(tx: Knex.Transaction, record: IdempotencyRecord, notBefore: number): Promise<void> {
  const row = idempotencyRow(record);
  await tx(IDEMPOTENCY_TABLE).where({ caller: row.caller, key: row.key }).andWhere('created_at', '<', notBefore).delete();
  await tx(IDEMPOTENCY_TABLE).insert(row);
}

export const IDEMPOTENCY_TABLE = 'idempotency_keys';

/**
 * The record as a row, for a write that inserts it merged with others: the
 * insert fails on any record under the key, live or expired, and the write
 * is then done alone with saveIdempotencyRecord. The key becomes its lookup
 * hash and the response is sealed.
 */
export function idempotencyRow(record: IdempotencyRecord): IdempotencyRow {
  const { lookup, sealKey } = derive(record.caller, record.key);
  return {
    caller: record.caller,
    key: lookup,
    request_hash: record.requestHash,
    status: record.status,
    response: seal(sealKey, record.status, record.response),
    created_at: record.createdAt,
  };
}

/**
 * Migration 002: records written before it hold their key and response in
 * clear (a sign-up's token among them); each is rewritten as idempotencyRow
 * writes it, so a repeat still replays.
 */
export async function sealClearIdempotencyRecords(knex: Knex): Promise<void> {
  const rows = await knex<IdempotencyRow>(IDEMPOTENCY_TABLE).select();
  for (const row of rows) {
    if (row.response.startsWith(SEALED_PREFIX)) continue;
    const sealed = idempotencyRow({
      caller: row.caller,
      key: row.key,
      requestHash: row.request_hash,
      status: Number(row.status),
      response: row.response,
      createdAt: Number(row.created_at),
    });
    await knex(IDEMPOTENCY_TABLE).where({ caller: row.caller, key: row.key }).update({ key: sealed.key, response: sealed.response });
  }
}

export async function pruneIdempotencyRecords(db: Knex, notBefore: number): Promise<number> {
  return db(IDEMPOTENCY_TABLE).where('created_at', '<', notBefore).delete();
}
