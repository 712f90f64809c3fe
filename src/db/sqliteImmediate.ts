/**
 * @file SQLite's writing connection begins every transaction IMMEDIATE: it
 * takes the file's write lock at BEGIN, or waits for it there (busy_timeout)
 * and fails before any statement has run. A deferred BEGIN takes the lock
 * at the first write instead, so a batch of writes sent together waits the
 * timeout out once per statement while another process holds the lock (a
 * backup, a long migration), and a transaction that read first can still
 * lose the lock to a writer that committed in between. Only the writer's
 * pool (OpenOptions.writer) uses it, its transactions all writing, and
 * only with no file attached: BEGIN IMMEDIATE takes the write lock of every
 * attached database as well (`warren api`'s writer attaches none).
 */
import type { Knex } from 'knex';
import TransactionSqlite from 'knex/lib/dialects/sqlite3/execution/sqlite-transaction';

class ImmediateTransaction extends TransactionSqlite {
  override begin(conn: object): Promise<unknown> {
    return this.query(conn, 'BEGIN IMMEDIATE;');
  }
}

type ClientClass = new (config: Knex.Config) => Knex.Client;

/** `Base` (one of knex's SQLite clients) with every top-level transaction begun IMMEDIATE; savepoints stay savepoints. */
export function immediateTransactions<C extends ClientClass>(Base: C): C {
  class ImmediateClient extends (Base as ClientClass) {
    override transaction(container: unknown, config: unknown, outerTx: unknown): Knex.Transaction {
      return new ImmediateTransaction(this, container, config, outerTx) as unknown as Knex.Transaction;
    }
  }
  return ImmediateClient as unknown as C;
}
