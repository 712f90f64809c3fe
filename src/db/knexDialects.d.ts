/**
 * @file Types for the classes of knex's dialects that Warren extends: the
 * PostgreSQL client and transaction (src/db/postgres.ts) and the
 * better-sqlite3 client (src/db/sqliteThread.ts). knex ships no
 * declarations for its dialects.
 */
declare module 'knex/lib/dialects/postgres' {
  import type { Knex } from 'knex';

  /** knex's PostgreSQL client: runs one query on one driver connection. */
  class ClientPg extends Knex.Client {
    constructor(config: Knex.Config);
    _query(conn: object, obj: ClientPg.Query): Promise<ClientPg.Query>;
  }
  namespace ClientPg {
    /** A query as knex hands it to its dialect; the driver's answer lands in `response`. */
    interface Query {
      sql: string;
      bindings?: readonly unknown[];
      options?: Record<string, unknown>;
      response?: unknown;
    }
  }
  export = ClientPg;
}

declare module 'knex/lib/dialects/postgres/execution/pg-transaction' {
  import type { Knex } from 'knex';

  /** knex's PostgreSQL transaction: its BEGIN, COMMIT and ROLLBACK on the connection it holds. */
  class TransactionPg {
    constructor(client: Knex.Client, ...args: unknown[]);
    isolationLevel?: string;
    readOnly?: boolean;
    begin(conn: object): Promise<unknown>;
    commit(conn: object, value?: unknown): Promise<unknown>;
    rollback(conn: object, error?: unknown): Promise<unknown>;
    query(conn: object, sql: string, status?: number, value?: unknown): Promise<unknown>;
  }
  export = TransactionPg;
}

declare module 'knex/lib/dialects/better-sqlite3' {
  import type { Knex } from 'knex';

  /** knex's better-sqlite3 client: SQLite's dialect, on a driver connection it opens itself. */
  class ClientBetterSqlite3 extends Knex.Client {
    constructor(config: Knex.Config);
    acquireRawConnection(): Promise<object>;
    destroyRawConnection(conn: object): Promise<void>;
    _query(conn: object, obj: ClientBetterSqlite3.Query): Promise<ClientBetterSqlite3.Query>;
    _formatBindings(bindings: readonly unknown[] | undefined): unknown[];
    connectionSettings: { filename: string };
  }
  namespace ClientBetterSqlite3 {
    /** A query as knex hands it to its dialect; the answer lands in `response` and `context`. */
    interface Query {
      sql: string;
      bindings?: readonly unknown[];
      options?: Record<string, unknown>;
      response?: unknown;
      context?: { lastID: number; changes: number };
    }
  }
  export = ClientBetterSqlite3;
}

declare module 'knex/lib/dialects/sqlite3/execution/sqlite-transaction' {
  import type { Knex } from 'knex';

  /** knex's SQLite transaction (both SQLite clients): its BEGIN on the connection it holds. */
  class TransactionSqlite {
    constructor(client: Knex.Client, ...args: unknown[]);
    begin(conn: object): Promise<unknown>;
    query(conn: object, sql: string, status?: number, value?: unknown): Promise<unknown>;
  }
  export = TransactionSqlite;
}

declare module 'knex/lib/dialects/sqlite3' {
  import type { Knex } from 'knex';

  /** knex's node-sqlite3 client. */
  class ClientSqlite3 extends Knex.Client {
    constructor(config: Knex.Config);
  }
  export = ClientSqlite3;
}
