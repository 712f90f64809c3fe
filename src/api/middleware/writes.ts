import type { Knex } from 'knex';
import type { Middleware } from 'koa';
import { UnavailableError } from '../../domain/errors';
import { buildEvent, type MessageBody, type MessageType, type OutgoingEvent } from '../../domain/messages';
import { missingDatabaseFile } from '../../db/knex';
import { enqueueEvents } from '../../db/outbox';
import { saveIdempotencyRecord } from '../../db/repositories/idempotency';
import type { ApiContext, ApiDeps, ApiState } from '../context';

const RETRY_AFTER_SECONDS = 5;

/**
 * Disk is finite: while more events wait in the outbox than
 * `outbox.maxBacklog` (the broker is away), writes that emit events are
 * refused with 503 and Retry-After instead of growing it further.
 */
export function guardOutboxBacklog(deps: ApiDeps): Middleware<ApiState> {
  return async (_ctx, next) => {
    const backlog = deps.outboxBacklog();
    if (backlog > deps.config.outbox.maxBacklog) {
      throw new UnavailableError(`${backlog} events are waiting to be published; try again later`, RETRY_AFTER_SECONDS, 'outbox_backlog');
    }
    await next();
  };
}

export interface WriteResult {
  status: number;
  body?: unknown;
}

/** Records an event to be written to the outbox with the change that caused it. */
export type Emit = <T extends MessageType>(type: T, body: MessageBody<T>) => void;

/**
 * Runs one write: the change, its outbox events and the Idempotency-Key
 * record (when the request has one) commit together or not at all, so an
 * acknowledged change always has its event and a failed one leaves nothing
 * half-written. The relay is woken only after the commit, when the events
 * are visible to it.
 */
export async function commitWrite(
  ctx: ApiContext,
  deps: ApiDeps,
  work: (tx: Knex.Transaction, emit: Emit, now: Date) => Promise<WriteResult>,
): Promise<void> {
  const now = deps.now();
  const events: OutgoingEvent[] = [];
  const emit: Emit = (type, body) => {
    events.push(buildEvent(type, body, { correlationId: ctx.state.requestId, traceId: ctx.state.traceId, now }));
  };
  const idempotency = ctx.state.idempotency;
  const missing = missingDatabaseFile(deps.db);
  if (missing) throw new UnavailableError(`the database file ${missing} is missing; nothing was written`, RETRY_AFTER_SECONDS, 'database_unavailable');
  const result = await deps.writes.run(async (tx) => {
    const outcome = await work(tx, emit, now);
    await enqueueEvents(tx, events);
    if (idempotency) {
      const record = {
        caller: idempotency.caller,
        key: idempotency.key,
        requestHash: idempotency.requestHash,
        status: outcome.status,
        response: JSON.stringify(outcome.body ?? null),
        createdAt: now.getTime(),
      };
      await saveIdempotencyRecord(tx, record, idempotency.notBefore);
    }
    return outcome;
  });
  if (events.length > 0) {
    try {
      deps.onEventsWritten();
    } catch (err) {
      // The change is committed and the relay polls anyway: a failed wake-up must not fail the request.
      deps.log.warn({ err, requestId: ctx.state.requestId }, 'waking the outbox relay failed');
    }
  }
  ctx.status = result.status;
  if (result.body !== undefined) ctx.body = result.body;
}
