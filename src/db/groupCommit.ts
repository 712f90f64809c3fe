import type { Knex } from 'knex';
import { UnavailableError } from '../domain/errors';
import { isDatabaseUnavailable, isUnavailableForAll } from './repositories/errors';

/** Rows one write adds to one table. */
export interface TableRows {
  table: string;
  rows: Record<string, unknown>[];
}

/**
 * A write that only inserts rows it knows before the transaction starts
 * (a tweet and its outbox event). Within a batch such writes are merged
 * into one multi-row INSERT per table; `alone` is the same write done by
 * itself, used when the merged insert fails, so that a failing write
 * still fails alone.
 */
export interface InsertWrite<T> {
  inserts: TableRows[];
  /** What the write resolves to once committed. */
  value: T;
  alone(tx: Knex.Transaction): Promise<T>;
}

export interface RunOptions {
  /**
   * The work has no effect outside the transaction (no events emitted, no
   * state kept), so it may run again after a rollback: it is sent together
   * with the batch's merged inserts, without a savepoint of its own, and if
   * any of them fails the batch is done again the careful way.
   */
  rerunnable?: boolean;
}

interface PendingWrite {
  work?: (tx: Knex.Transaction) => Promise<unknown>;
  rerunnable?: boolean;
  insert?: InsertWrite<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/**
 * The database refused the COMMIT itself (SQLite busy at commit, a deferred
 * constraint): nothing of the batch is durable, and each of its writes is
 * answered 503 so the client tries again.
 */
export class CommitRefusedError extends UnavailableError {
  constructor(readonly refusal: unknown) {
    super('the database refused to commit this write; try again shortly', 1, 'database_unavailable');
  }
}

/** Whether the writer can commit, as its last transactions say. */
export interface WriterHealth {
  ok: boolean;
  /**
   * Transactions that failed as a whole since the last one that committed:
   * a refused COMMIT, or the database busy, locked or unreachable (not a
   * write's own failure, such as a taken handle).
   */
  failedInARow: number;
  lastCommitAt: number | null;
  lastFailure?: string;
  /** How long the transaction under way has taken, when it is past the stall threshold. */
  stalledForMs?: number;
}

export interface GroupCommitOptions {
  maxBatch?: number;
  /** A transaction under way longer than this makes the writer unhealthy (default 10 s). */
  stallAfterMs?: number;
  /**
   * Asked once before each batch: a reason to refuse all of its writes
   * without starting a transaction (the database file is gone), or undefined.
   */
  refuseWhen?: () => Error | undefined;
}

/** The driver's side of knex that hands out and takes back connections. */
interface ConnectionPool {
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): Promise<unknown>;
  query(connection: unknown, sql: string): Promise<unknown>;
}

type Outcome = { ok: true; value: unknown } | { ok: false; err: unknown };

// Bound variables per INSERT stay far below SQLite's 32,766 and PostgreSQL's 65,535.
const MAX_BOUND_VALUES = 10_000;

/**
 * Group commit: writes that arrive while a transaction is committing are
 * run together in the next one and share its single durable commit (one
 * fsync instead of one per request). A write is resolved only after the
 * transaction holding it committed, so nothing is acknowledged before it is
 * durable; a write that fails rolls back to its savepoint and fails alone.
 * Insert-only writes of a batch go first, in one statement per table, sent
 * together with the rerunnable writes (the relay's); the other writes
 * follow, each in a savepoint. If one of the first is refused, the
 * transaction rolls back and every write of the batch is tried again in a
 * savepoint of its own.
 * There is no timer: a lone write starts at the end of the event loop's
 * current turn, so light traffic pays no latency for batching.
 */
export class GroupCommit {
  private readonly queue: PendingWrite[] = [];
  private draining = false;
  readonly stats = { transactions: 0, writes: 0 };
  private failedInARow = 0;
  private lastCommitAt: number | null = null;
  private lastFailure = '';
  private transactionStartedAt: number | null = null;
  private readonly maxBatch: number;
  private readonly stallAfterMs: number;
  private readonly refuseWhen: () => Error | undefined;

  constructor(
    private readonly db: Knex,
    opts: GroupCommitOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 256;
    this.stallAfterMs = opts.stallAfterMs ?? 10_000;
    this.refuseWhen = opts.refuseWhen ?? (() => undefined);
  }

  run<T>(work: (tx: Knex.Transaction) => Promise<T>, opts: RunOptions = {}): Promise<T> {
    return this.enqueue<T>({ work, rerunnable: opts.rerunnable === true });
  }

  insert<T>(write: InsertWrite<T>): Promise<T> {
    return this.enqueue<T>({ insert: write as InsertWrite<unknown> });
  }

  /**
   * Healthy unless the last transaction failed as a whole or the one under
   * way is stalled; a transaction that commits (a request's, the relay's or
   * a readiness probe's) heals it.
   */
  health(now = Date.now()): WriterHealth {
    const runningMs = this.transactionStartedAt === null ? 0 : now - this.transactionStartedAt;
    const stalled = runningMs > this.stallAfterMs;
    return {
      ok: this.failedInARow === 0 && !stalled,
      failedInARow: this.failedInARow,
      lastCommitAt: this.lastCommitAt,
      ...(this.lastFailure ? { lastFailure: this.lastFailure } : {}),
      ...(stalled ? { stalledForMs: runningMs } : {}),
    };
  }

  private enqueue<T>(write: Pick<PendingWrite, 'work' | 'insert' | 'rerunnable'>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ ...write, resolve: resolve as (value: unknown) => void, reject });
      if (this.draining) return;
      this.draining = true;
      // At the end of this turn of the event loop, not at once: every request
      // read in the same turn joins the batch. With a synchronous driver
      // (better-sqlite3) a transaction started at once would run, fsync
      // included, before the others got here, and batches would stay small.
      setImmediate(() => void this.drain());
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) await this.commitBatch(this.queue.splice(0, this.maxBatch));
    } finally {
      this.draining = false;
    }
  }

  private async commitBatch(batch: PendingWrite[]): Promise<void> {
    const refusal = this.refuseWhen();
    if (refusal) {
      this.failed(refusal);
      for (const write of batch) write.reject(refusal);
      return;
    }
    const inserts = batch.filter((w) => w.insert);
    const together = batch.filter((w) => w.work && w.rerunnable);
    let togetherFailed = false;
    if (batch.length > 1 && inserts.length + together.length > 0) {
      // The merged inserts and the rerunnable writes first, sent together
      // without savepoints (the driver runs them one after another with no
      // round trip to this thread in between); the other writes after them,
      // each in a savepoint of its own. If one of the first is refused, the
      // whole transaction rolls back and the batch is done again the careful
      // way below; none of the others has run by then.
      const outcomes = new Map<PendingWrite, Outcome>();
      try {
        await this.transaction(async (tx) => {
          // Settled, not raced: nothing may still be running when the transaction ends.
          const settled = await Promise.allSettled([
            ...insertMerged(
              tx,
              inserts.map((w) => w.insert!),
            ),
            ...together.map((w) => w.work!(tx)),
          ]);
          const refused = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
          if (refused) {
            togetherFailed = true;
            throw refused.reason;
          }
          const values = settled.slice(settled.length - together.length);
          together.forEach((w, i) => outcomes.set(w, { ok: true, value: (values[i] as PromiseFulfilledResult<unknown>).value }));
          for (const write of batch) if (write.work && !write.rerunnable) outcomes.set(write, await inSavepoint(tx, write.work));
        });
      } catch (err) {
        // The commit itself failed (CommitRefusedError, rolled back), or the database is busy or gone: nothing
        // of this batch is durable, and doing it again write by write would only wait out the same lock once per write.
        if (!togetherFailed || isUnavailableForAll(err)) {
          for (const write of batch) write.reject(err);
          return;
        }
      }
      if (!togetherFailed) {
        for (const write of inserts) outcomes.set(write, { ok: true, value: write.insert!.value });
        this.settle(batch, outcomes);
        return;
      }
    }
    const outcomes = new Map<PendingWrite, Outcome>();
    try {
      await this.transaction(async (tx) => {
        if (batch.length === 1) {
          // Alone, a write needs no savepoint: its failure rolls back the transaction it owns.
          const write = batch[0]!;
          outcomes.set(write, { ok: true, value: write.insert ? await write.insert.alone(tx) : await write.work!(tx) });
          return;
        }
        // Each write in a savepoint of its own: a batch of other writes only, or one whose writes sent
        // together were refused (a unique key taken, a row gone), so that the refused one fails alone.
        for (const write of batch) {
          const outcome = await inSavepoint(tx, write.work ?? ((t: Knex.Transaction) => write.insert!.alone(t)));
          // Busy or gone for one write is busy or gone for the rest: the whole batch fails now, not once per write.
          if (!outcome.ok && isUnavailableForAll(outcome.err)) throw outcome.err;
          outcomes.set(write, outcome);
        }
      });
    } catch (err) {
      // The commit itself failed (or the lone write did): nothing of this batch is durable.
      for (const write of batch) write.reject(err);
      return;
    }
    this.settle(batch, outcomes);
  }

  /**
   * One transaction on a connection held for it, so that a refused COMMIT
   * can be rolled back on the very connection it left open: SQLite keeps
   * the transaction after a refused COMMIT, and without the ROLLBACK the
   * single writing connection could never begin another (every later write
   * would fail while the process looked healthy).
   */
  private async transaction(work: (tx: Knex.Transaction) => Promise<void>): Promise<void> {
    const pool = this.db.client as ConnectionPool;
    this.transactionStartedAt = Date.now();
    let committing = false;
    try {
      const connection = await pool.acquireConnection();
      try {
        await this.db.transaction(
          async (tx) => {
            await work(tx);
            committing = true;
          },
          { connection },
        );
      } catch (err) {
        if (!committing) throw err;
        // PostgreSQL has already ended a transaction whose COMMIT failed; there the ROLLBACK only warns.
        await pool.query(connection, 'ROLLBACK').catch(() => undefined);
        throw new CommitRefusedError(err);
      } finally {
        await pool.releaseConnection(connection);
      }
    } catch (err) {
      if (err instanceof CommitRefusedError) this.failed(err.refusal);
      else if (isDatabaseUnavailable(err)) this.failed(err);
      throw err;
    } finally {
      this.transactionStartedAt = null;
    }
  }

  private failed(err: unknown): void {
    this.failedInARow++;
    this.lastFailure = err instanceof Error ? err.message : String(err);
  }

  /** Answers the writes of a committed transaction. */
  private settle(batch: PendingWrite[], outcomes: Map<PendingWrite, Outcome>): void {
    this.stats.transactions++;
    this.stats.writes += batch.length;
    // Committed; but writes that each failed for a busy or unreachable database committed nothing of theirs.
    const unavailable = [...outcomes.values()].find((o): o is { ok: false; err: unknown } => !o.ok && isDatabaseUnavailable(o.err));
    if (unavailable) this.failed(unavailable.err);
    else {
      this.failedInARow = 0;
      this.lastCommitAt = Date.now();
    }
    for (const write of batch) {
      const outcome = outcomes.get(write)!;
      if (outcome.ok) write.resolve(outcome.value);
      else write.reject(outcome.err);
    }
  }
}

/** One write in a savepoint of its own: its failure undoes it alone. */
async function inSavepoint(tx: Knex.Transaction, work: (tx: Knex.Transaction) => Promise<unknown>): Promise<Outcome> {
  try {
    return { ok: true, value: await tx.transaction((savepoint) => work(savepoint)) };
  } catch (err) {
    return { ok: false, err };
  }
}

/** One multi-row INSERT per table (chunked when very large), all sent at once; they touch no row in common. */
function insertMerged(tx: Knex.Transaction, writes: InsertWrite<unknown>[]): Promise<unknown>[] {
  const byTable = new Map<string, Record<string, unknown>[]>();
  for (const write of writes) {
    for (const { table, rows } of write.inserts) {
      const all = byTable.get(table) ?? [];
      if (!byTable.has(table)) byTable.set(table, all);
      all.push(...rows);
    }
  }
  const statements: Promise<unknown>[] = [];
  for (const [table, rows] of byTable) {
    if (rows.length === 0) continue;
    const perInsert = Math.max(1, Math.floor(MAX_BOUND_VALUES / Object.keys(rows[0]!).length));
    for (let i = 0; i < rows.length; i += perInsert) statements.push(Promise.resolve(tx(table).insert(rows.slice(i, i + perInsert))));
  }
  return statements;
}
