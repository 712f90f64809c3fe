import crypto from 'node:crypto';
import { v7 as uuidv7, validate, version } from 'uuid';

// Random bytes drawn 4 KiB at a time: one call into the CSPRNG serves a few
// hundred trace and span ids instead of one each.
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let poolOffset = POOL_BYTES;

/** `bytes` random bytes as lowercase hex (trace ids, span ids), from the CSPRNG. */
export function randomHex(bytes: number): string {
  if (bytes > POOL_BYTES) return crypto.randomBytes(bytes).toString('hex');
  if (poolOffset + bytes > POOL_BYTES) {
    crypto.randomFillSync(pool);
    poolOffset = 0;
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

/** Ids are UUIDv7: time-ordered, so "newest first" is "largest id first". */
export function newId(): string {
  return uuidv7();
}

export function isUuidV7(value: string): boolean {
  return validate(value) && version(value) === 7;
}

export function isUuid(value: string): boolean {
  return validate(value);
}

/**
 * The longest caller-chosen request id the API keeps (`x-request-id`); it
 * becomes the events' correlation id, so the outbox column is this wide too.
 */
export const MAX_REQUEST_ID_LENGTH = 128;
