/** @file
 * Typed errors. HTTP statuses are mapped from these in one place
 * (src/api/middleware/errors.ts); retry decisions in one place
 * (src/consume/retry.ts).
 */

export interface FieldIssue {
  path: string;
  message: string;
}

export class DomainError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class ValidationError extends DomainError {
  constructor(
    message: string,
    readonly details: FieldIssue[] = [],
  ) {
    super('validation_failed', message);
  }
}
export class UnauthorizedError extends DomainError {
  constructor(message = 'a valid bearer token is required', code = 'unauthorized') {
    super(code, message);
  }
}
export class ForbiddenError extends DomainError {
  constructor(message = 'not allowed for this token') {
    super('forbidden', message);
  }
}
export class NotFoundError extends DomainError {
  constructor(what: string) {
    super('not_found', `${what} not found`);
  }
}
export class ConflictError extends DomainError {
  constructor(message: string, code = 'conflict') {
    super(code, message);
  }
}
export class UnavailableError extends DomainError {
  constructor(
    message: string,
    readonly retryAfterSeconds = 5,
    code = 'unavailable',
  ) {
    super(code, message);
  }
}

/** A configured limit is reached (429): the client may try again after `retryAfterSeconds`. */
export class TooManyRequestsError extends DomainError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
    code = 'too_many_requests',
  ) {
    super(code, message);
  }
}

/** A message that can never be processed, however often it is retried: park it at once. */
export class PermanentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PermanentError';
  }
}

/** A failure worth retrying with backoff (a busy database, a timeout). */
export class TransientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransientError';
  }
}
