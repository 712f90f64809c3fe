import { v7 as uuidv7, validate, version } from 'uuid';

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
