// The API's unit of work: a request's change, the outbox events it emits and its
// Idempotency-Key record commit together through the group commit, or not at all.

import type { Knex } from 'knex';
import { UnavailableError } from '../domain/errors';
import { buildEvent, type MessageBody, type MessageType, type OutgoingEvent } from '../domain/messages';
import type { TableRows } from '../db/groupCommit';
import { missingDatabaseFile, type Db } from '../db/knex';
import { enqueueEvents, OUTBOX_TABLE, outboxRows } from '../outbox/store';
import { IDEMPOTENCY_TABLE, idempotencyRow, saveIdempotencyRecord, type IdempotencyRecord } from '../db/repositories/idempotency';
import type { TracedSpan } from '../observability/tracing';
import type { ApiContext, ApiDeps } from './context';

/** What a write refused for a passing reason (a missing file, a full outbox) tells the client to wait. */
export const RETRY_AFTER_SECONDS = 5;

/**
 * The group commit's check before each batch (once per batch, not per
 * request): a SQLite file deleted under the running API would take every
 * write with it at the next start, so none is taken.
 */
export function refuseWithoutDatabaseFile(db: Db): () => Error | undefined {
  return () => {
    const missing = missingDatabaseFile(db);
    return missing
      ? new UnavailableError(`the database file ${missing} is missing; nothing was written`, RETRY_AFTER_SECONDS, 'database_unavailable')
      : undefined;
  };
}

export interface WriteResult {
  status: number;
  body?: unknown;
}

/** Records an event to be written to the outbox with the change that caused it. */
export type Emit = <T extends MessageType>(type: T, body: MessageBody<T>) => void;

/**
 * What every write of a request shares: its clock, the events it emits, its
 * Idempotency-Key record, and the trace context its events carry: the
 * outbox write's span when tracing is on (the relay's publish becomes its
 * child), else the caller's context passed on unchanged (its parent is the
 * caller's span, its sampled flag the caller's decision).
 */
function prepareWrite(ctx: ApiContext, deps: ApiDeps, span: TracedSpan | undefined) {
  const now = deps.now();
  const events: OutgoingEvent[] = [];
  // Without either, buildEvent gives each event a new, unsampled traceparent under the request's trace.
  const trace = span?.headers() ?? ctx.state.trace;
  const emit: Emit = (type, body) => {
    events.push(buildEvent(type, body, { correlationId: ctx.state.requestId, traceId: ctx.state.traceId, trace, now }));
  };
  const idempotency = ctx.state.idempotency;
  const recordOf = (outcome: WriteResult): IdempotencyRecord | undefined =>
    idempotency && {
      caller: idempotency.caller,
      key: idempotency.key,
      requestHash: idempotency.requestHash,
      status: outcome.status,
      response: JSON.stringify(outcome.body ?? null),
      createdAt: now.getTime(),
    };
  return { now, events, emit, recordOf, notBefore: idempotency?.notBefore ?? 0 };
}

/** After the commit: wake the relay for the events, answer with the result. */
function answer(ctx: ApiContext, deps: ApiDeps, events: OutgoingEvent[], result: WriteResult): void {
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

/**
 * Runs one write: the change, its outbox events and the Idempotency-Key
 * record (when the request has one) commit together or not at all, so an
 * acknowledged change always has its event and a failed one leaves nothing
 * half-written. The relay is woken only after the commit, when the events
 * are visible to it.
 */
export async function commitWrite(ctx: ApiContext, deps: ApiDeps, work: (tx: Knex.Transaction, emit: Emit, now: Date) => Promise<WriteResult>): Promise<void> {
  const span = deps.tracing?.outboxWrite();
  const { now, events, emit, recordOf, notBefore } = prepareWrite(ctx, deps, span);
  const write = deps.writes.run(async (tx) => {
    const outcome = await work(tx, emit, now);
    await enqueueEvents(tx, events);
    const record = recordOf(outcome);
    if (record) await saveIdempotencyRecord(tx, record, notBefore);
    return outcome;
  });
  const result = await (span ? settleSpan(span, events, write) : write);
  answer(ctx, deps, events, result);
}

/** Ends the outbox write's span when its commit has settled, failed if it failed. */
async function settleSpan<T>(span: TracedSpan, events: OutgoingEvent[], write: Promise<T>): Promise<T> {
  try {
    const value = await write;
    span.set('warren.outbox.events', events.length);
    span.end();
    return value;
  } catch (err) {
    span.end(err);
    throw err;
  }
}

/**
 * commitWrite for a write that only inserts rows known before it starts
 * (no reads): its rows, events and Idempotency-Key record are merged with
 * the other such writes of its group commit into one INSERT per table, and
 * it is done alone only if that merged insert fails. Same guarantees.
 */
export async function commitInserts(
  ctx: ApiContext,
  deps: ApiDeps,
  plan: (emit: Emit, now: Date) => { inserts: TableRows[]; result: WriteResult },
): Promise<void> {
  const span = deps.tracing?.outboxWrite();
  const { now, events, emit, recordOf, notBefore } = prepareWrite(ctx, deps, span);
  const { inserts, result } = plan(emit, now);
  const record = recordOf(result);
  const all: TableRows[] = [...inserts];
  if (events.length > 0) all.push({ table: OUTBOX_TABLE, rows: outboxRows(events) });
  if (record) all.push({ table: IDEMPOTENCY_TABLE, rows: [idempotencyRow(record)] });
  const write = deps.writes.insert({
    inserts: all,
    value: result,
    alone: async (tx) => {
      for (const { table, rows } of inserts) await tx(table).insert(rows);
      await enqueueEvents(tx, events);
      if (record) await saveIdempotencyRecord(tx, record, notBefore);
      return result;
    },
  });
  await (span ? settleSpan(span, events, write) : write);
  answer(ctx, deps, events, result);
}
