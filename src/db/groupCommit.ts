import type { Knex } from 'knex';

interface PendingWrite {
  work: (tx: Knex.Transaction) => Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/**
 * Group commit: writes that arrive while a transaction is committing are
 * run together in the next one, each in a savepoint of its own, and share
 * its single durable commit (one fsync instead of one per request). A write
 * is resolved only after the transaction holding it committed, so nothing is
 * acknowledged before it is durable; a write that fails rolls back to its
 * savepoint and fails alone. There is no timer: a lone write starts at once,
 * so light traffic pays no latency for batching.
 */
export class GroupCommit {
  private readonly queue: PendingWrite[] = [];
  private draining = false;
  readonly stats = { transactions: 0, writes: 0 };

  constructor(private readonly db: Knex, private readonly maxBatch = 256) {}

  run<T>(work: (tx: Knex.Transaction) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (!this.draining) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) await this.commitBatch(this.queue.splice(0, this.maxBatch));
    } finally {
      this.draining = false;
    }
  }

  private async commitBatch(batch: PendingWrite[]): Promise<void> {
    const outcomes: ({ ok: true; value: unknown } | { ok: false; err: unknown })[] = [];
    try {
      await this.db.transaction(async (tx) => {
        if (batch.length === 1) {
          // Alone, a write needs no savepoint: its failure rolls back the transaction it owns.
          outcomes.push({ ok: true, value: await batch[0]!.work(tx) });
          return;
        }
        for (const write of batch) {
          try {
            outcomes.push({ ok: true, value: await tx.transaction((savepoint) => write.work(savepoint)) });
          } catch (err) {
            outcomes.push({ ok: false, err });
          }
        }
      });
    } catch (err) {
      // The commit itself failed (or the lone write did): nothing of this batch is durable.
      for (const write of batch) write.reject(err);
      return;
    }
    this.stats.transactions++;
    this.stats.writes += batch.length;
    batch.forEach((write, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) write.resolve(outcome.value);
      else write.reject(outcome.err);
    });
  }
}
