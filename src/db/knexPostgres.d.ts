/**
 * @file Types for the two classes of knex's PostgreSQL dialect that
 * src/db/postgres.ts extends (knex ships no declarations for its dialects).
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
