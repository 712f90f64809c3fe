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
