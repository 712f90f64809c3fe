/**
 * @file PostgreSQL connections that keep no session state: every setting
 * Warren relies on (the service's schema as search_path, the statement
 * timeout, the role migrations act as) is set with `SET LOCAL` inside each
 * transaction, so they hold behind a pooler in transaction mode (PgBouncer
 * `pool_mode = transaction`) as they do on a direct connection.
 */
import knexFactory, { type Knex } from 'knex';
import ClientPg from 'knex/lib/dialects/postgres';
import TransactionPg from 'knex/lib/dialects/postgres/execution/pg-transaction';

/** What every transaction on these connections runs under. */
export interface TransactionSettings {
  /** The schema unqualified names resolve in (the service's own). */
  schema: string;
  /** The server cancels a statement that outlives this; 0 or undefined: the server's default. */
  statementTimeoutMs?: number;
  /** Act as this role (`SET LOCAL ROLE`), so that what migrations create is the role's. */
  role?: string;
  /**
   * Commit with a flush even when the session says otherwise: behind a
   * pooler a server session is shared, and another client's
   * `SET synchronous_commit = off` would stay on it. Raises `off` and
   * `local` to `on`, leaves the stronger `remote_*` levels as they are.
   */
  durableCommit?: boolean;
}

export interface PostgresOptions extends TransactionSettings {
  connectionString: string;
  pool?: Knex.PoolConfig;
}

/**
 * Opens a knex pool on PostgreSQL whose transactions each begin with the
 * settings, in the same round trip as their BEGIN. A statement run outside
 * a transaction runs in one of its own: behind a transaction pooler two
 * statements of one client connection may reach two server sessions, so
 * nothing set on a session (`SET search_path`, a start-up parameter) could
 * be relied on, and a session's leftovers would reach other clients.
 */
export function openPostgres(opts: PostgresOptions): Knex {
  return knexFactory({
    client: sessionlessClient(opts),
    connection: { connectionString: opts.connectionString },
    ...(opts.pool ? { pool: opts.pool } : {}),
  });
}

/** The `SET LOCAL` statements a transaction begins with. */
export function settingStatements({ schema, statementTimeoutMs, role, durableCommit }: TransactionSettings): string {
  return [
    ...(role ? [`SET LOCAL ROLE ${quoteIdentifier(role)}`] : []),
    `SET LOCAL search_path TO ${quoteIdentifier(schema)}`,
    ...(statementTimeoutMs ? [`SET LOCAL statement_timeout = ${Math.floor(statementTimeoutMs)}`] : []),
    ...(durableCommit ? ["SELECT set_config('synchronous_commit', 'on', true) WHERE current_setting('synchronous_commit') IN ('off', 'local')"] : []),
  ].join('; ');
}

export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Statements that open, close or mark a transaction themselves, never wrapped in another. */
const TRANSACTION_CONTROL = /^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE|SET\s+TRANSACTION)\b/i;

function sessionlessClient(settings: TransactionSettings): typeof ClientPg {
  const setLocal = settingStatements(settings);
  // The driver connections inside a transaction of ours, between its BEGIN and its COMMIT or ROLLBACK.
  const inTransaction = new WeakSet<object>();

  class SessionlessTransaction extends TransactionPg {
    override begin(conn: object): Promise<unknown> {
      const mode = [this.isolationLevel ? `ISOLATION LEVEL ${this.isolationLevel}` : '', this.readOnly ? 'READ ONLY' : ''].join(' ').trim();
      inTransaction.add(conn);
      return this.query(conn, `BEGIN${mode ? ` TRANSACTION ${mode}` : ''}; ${setLocal}`);
    }

    override commit(conn: object, value?: unknown): Promise<unknown> {
      return super.commit(conn, value).finally(() => inTransaction.delete(conn));
    }

    override rollback(conn: object, error?: unknown): Promise<unknown> {
      return super.rollback(conn, error).finally(() => inTransaction.delete(conn));
    }
  }

  return class SessionlessClient extends ClientPg {
    override transaction(container: unknown, config: unknown, outerTx: unknown): Knex.Transaction {
      // knex's own Transaction_PG is what its Client_PG returns here; its declared type is the transactor the caller gets from it.
      return new SessionlessTransaction(this, container, config, outerTx) as unknown as Knex.Transaction;
    }

    // Back in the pool, a connection is in no transaction of ours, even one whose BEGIN failed half-way.
    override releaseConnection(conn: object): Promise<unknown> {
      inTransaction.delete(conn);
      return super.releaseConnection(conn) as Promise<unknown>;
    }

    override async _query(conn: object, obj: ClientPg.Query): Promise<ClientPg.Query> {
      if (inTransaction.has(conn) || TRANSACTION_CONTROL.test(obj.sql)) return super._query(conn, obj);
      await super._query(conn, { sql: `BEGIN; ${setLocal}`, bindings: [] });
      let done: ClientPg.Query;
      try {
        done = await super._query(conn, obj);
      } catch (err) {
        await super._query(conn, { sql: 'ROLLBACK', bindings: [] }).catch(() => undefined);
        throw err;
      }
      // A COMMIT that fails (a deferred constraint) fails the statement: nothing of it is durable.
      await super._query(conn, { sql: 'COMMIT', bindings: [] });
      return done;
    }
  };
}
