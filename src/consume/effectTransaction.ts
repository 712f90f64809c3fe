import type { Knex } from 'knex';
import { claimInboxRecords } from '../db/inbox';
import type { WarrenMessage } from '../domain/messages';
import { deliveryLogger, type Logger } from '../log';
import type { HandlerContext, WorkerDefinition } from './handler';

export class HandlerTimeoutError extends Error {
  constructor(ms: number) {
    super(`handler did not finish within ${ms} ms; aborted`);
    this.name = 'HandlerTimeoutError';
  }
}

/**
 * A message's own `handle` failed (or was still running when the time was
 * up) inside a transaction holding several: that message is to blame, the
 * others only shared its transaction.
 */
export class MessageFailedError extends Error {
  constructor(
    readonly culprit: WarrenMessage,
    readonly error: unknown,
  ) {
    super(`message ${culprit.messageId}: ${(error as Error)?.message ?? String(error)}`);
    this.name = 'MessageFailedError';
  }
}

export interface EffectTransactionOptions {
  db: Knex;
  worker: WorkerDefinition;
  timeoutMs: number;
  log: Logger;
  now(): Date;
  /** `handleBatch` when the worker has one, else `handle` for each message in turn. */
  batched: boolean;
}

export interface CommittedEffects {
  /** Ids whose effect this transaction applied; the others were applied before. */
  applied: Set<string>;
  /** What the handlers asked to run once the effects are committed. */
  afterCommit: (() => void | Promise<void>)[];
}

/**
 * Claims the messages' inbox records and applies their effects in ONE
 * transaction, bounded by one handler timeout: the record is written with
 * the effect and only with it, so a message is applied exactly once however
 * often it is delivered. Nothing is kept if anything fails; the error is a
 * MessageFailedError when one message's own handler is to blame.
 */
export async function applyInOneTransaction(messages: readonly WarrenMessage[], opts: EffectTransactionOptions): Promise<CommittedEffects> {
  const { db, worker, timeoutMs } = opts;
  const callbacks: (() => void | Promise<void>)[] = [];
  // A handler past its time is told to stop, not only abandoned (BullMQ's processor gets a signal the same way).
  const abort = new AbortController();
  const ctx: HandlerContext = { log: opts.log, now: opts.now, afterCommit: (fn) => callbacks.push(fn), signal: abort.signal };
  let running: WarrenMessage | undefined;
  let committing = false;
  let timer: NodeJS.Timeout | undefined;
  // Held by us, not by knex, so that a failed COMMIT can be cleaned up before
  // anyone else gets the connection (see below). The driver's connection,
  // opaque here (knex types it `any`).
  const connection: unknown = await db.client.acquireConnection();
  try {
    // The callback form: knex's `trx.commit()` resolves even when COMMIT
    // fails (it rejects only the transaction's own promise), and a commit
    // that failed must never be acked.
    const applied = await db.transaction(
      async (trx) => {
        const work = (async () => {
          const claimed = await claimInboxRecords(
            trx,
            worker.name,
            messages.map((m) => m.messageId),
            opts.now().getTime(),
          );
          // In delivery order, each id once: a message the relay sent twice may arrive twice in one batch.
          const fresh = messages.filter((m) => claimed.delete(m.messageId));
          if (opts.batched && worker.handleBatch) {
            if (fresh.length > 0) await worker.handleBatch(fresh as never[], trx, ctx);
          } else {
            for (const m of fresh) {
              running = m;
              try {
                // Its lines carry the request id of the HTTP request that caused it.
                await worker.handle(m as never, trx, { ...ctx, log: deliveryLogger(opts.log, m) });
              } catch (err) {
                throw new MessageFailedError(m, err);
              }
              running = undefined;
            }
          }
          return new Set(fresh.map((m) => m.messageId));
        })();
        work.catch(() => undefined); // an abandoned handler's late failure is expected
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            const err = new HandlerTimeoutError(timeoutMs);
            abort.abort(err);
            reject(running ? new MessageFailedError(running, err) : err);
          }, timeoutMs);
        });
        // On failure knex rolls back. An abandoned handler may still be inside
        // a statement; the database's own statement timeout (src/db/knex.ts)
        // bounds how long the rollback waits, so the connection goes back to
        // the pool idle, never mid-query.
        const result = await Promise.race([work, timeout]);
        committing = true;
        return result;
      },
      { connection },
    );
    return { applied, afterCommit: callbacks };
  } catch (err) {
    // A COMMIT that failed (a deferred constraint, a full disk, an I/O
    // error) leaves SQLite's transaction open, and every later BEGIN on this
    // connection would fail. PostgreSQL has ended it already (its ROLLBACK
    // only warns that no transaction is in progress).
    if (committing)
      await db
        .raw('ROLLBACK')
        .connection(connection)
        .catch(() => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
    await db.client.releaseConnection(connection);
  }
}
