import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { Knex } from 'knex';
import ClientBetterSqlite3 from 'knex/lib/dialects/better-sqlite3';
import ClientSqlite3 from 'knex/lib/dialects/sqlite3';
import type { Config } from '../config';
import { openPostgres } from './postgres';
import { immediateTransactions } from './sqliteImmediate';
import { threadedSqliteClient } from './sqliteThread';
import { READ_MODELS, serviceDatabaseUrl, type Service } from './roles';

export type { Service } from './roles';

export type Db = Knex;

export function sqliteFile(config: Config, service: Service): string {
  return path.join(config.database.dir, `${service}.sqlite`);
}

/**
 * Opens the database of one service. `attachReadModels` (the API) makes the
 * analytics and notifications tables readable as `analytics.<table>` and
 * `notifications.<table>`: attached files on SQLite, schemas on PostgreSQL,
 * so the same knex `withSchema` query runs on both.
 */
export interface OpenOptions {
  attachReadModels?: boolean;
  statementTimeoutMs?: number;
  /**
   * SQLite: open this many read-only connections instead of the single
   * writing one. WAL lets them read while the writer commits, so a request's
   * reads never queue behind another's fsync.
   */
  readers?: number;
  /**
   * PostgreSQL, for `warren migrate`: connect with database.url's
   * credentials (the database owner) and act as this role in every
   * transaction (`SET LOCAL ROLE`), so that what the migrations create is the role's.
   */
  asRole?: string;
  /**
   * The API's writer (its group commit): with the default SQLite driver it
   * runs on a thread of its own, so that no fsync blocks the event loop; on
   * SQLite its transactions begin IMMEDIATE (src/db/sqliteImmediate.ts).
   */
  writer?: boolean;
}

/** How a SQLite connection runs its statements: node-sqlite3, better-sqlite3 in this thread, or better-sqlite3 on a thread of its own. */
export type SqliteRunner = 'sqlite3' | 'better-sqlite3' | 'thread';

/**
 * `database.sqliteDriver` for one connection pool. `auto`: the API's writer
 * on a thread of its own (better-sqlite3 there), since a synchronous durable
 * COMMIT would stall every request behind its fsync; node-sqlite3 for the
 * rest. Not better-sqlite3 in the workers: a statement waiting on a locked
 * store (busy_timeout) would hold their event loop, so heartbeats, handler
 * timeouts and the batch deadline would all wait with it (the fault suite's
 * scenario 16 caught it). The pools of a file this process has already
 * opened follow its library instead (runnerFor): the API's readers follow
 * its writer onto better-sqlite3.
 */
export function sqliteRunner(setting: Config['database']['sqliteDriver'], opts: Pick<OpenOptions, 'writer'>): SqliteRunner {
  if (setting !== 'auto') return setting;
  return opts.writer ? 'thread' : 'sqlite3';
}

/** The SQLite library a runner links: the writer's thread runs better-sqlite3's. */
export type SqliteLibrary = 'sqlite3' | 'better-sqlite3';
export const sqliteLibraryFor = (runner: SqliteRunner): SqliteLibrary => (runner === 'sqlite3' ? 'sqlite3' : 'better-sqlite3');

// Each SQLite file this process has open, with the library that opened it and how many pools hold it.
const openFiles = new Map<string, { library: SqliteLibrary; holders: number }>();

/**
 * One SQLite library per file in a process. node-sqlite3 and better-sqlite3
 * each link their own copy of SQLite, and two copies in one process do not
 * see each other's locks: worse, closing a descriptor drops every POSIX lock
 * the process holds on the file, so a pooled reader of one copy closing an
 * idle connection would silently release the other copy's write lock, and
 * another process could write beside it (SQLite's "How To Corrupt", 2.2.1).
 * This is the library this process has `file` open with, if any.
 */
export function sqliteLibraryOf(file: string): SqliteLibrary | undefined {
  return openFiles.get(path.resolve(file))?.library;
}

/** Records that `files` are open with `library` until the answer is called (once; later calls do nothing). */
export function holdSqliteFiles(files: string[], library: SqliteLibrary): () => void {
  const keys = files.map((f) => path.resolve(f));
  for (const key of keys) {
    const open = openFiles.get(key);
    if (open) open.holders++;
    else openFiles.set(key, { library, holders: 1 });
  }
  let held = true;
  return () => {
    if (!held) return;
    held = false;
    for (const key of keys) {
      const open = openFiles.get(key);
      if (open && --open.holders === 0) openFiles.delete(key);
    }
  };
}

/**
 * The runner for one pool. `auto` follows the library the process already
 * has the file (or any it attaches) open with: the API's readers follow its
 * writer onto better-sqlite3, in this thread since a WAL reader does not
 * wait on the writer. A setting other than `auto` is the same for every
 * pool, so it is taken as given.
 */
function runnerFor(config: Config, files: string[], opts: Pick<OpenOptions, 'writer'>): SqliteRunner {
  const wanted = sqliteRunner(config.database.sqliteDriver, opts);
  const held = files.map(sqliteLibraryOf).find((l) => l !== undefined);
  return config.database.sqliteDriver !== 'auto' || !held || held === sqliteLibraryFor(wanted) ? wanted : held;
}

/** Holds the pool's files for its library from now until it is destroyed, and again if it is initialized anew. */
function holdWhileOpen(db: Knex, files: string[], library: SqliteLibrary): Knex {
  let release = holdSqliteFiles(files, library);
  // knex's destroy() and initialize() are the client's (the instance's own properties are read-only).
  const client = db.client as { destroy(callback?: unknown): Promise<unknown>; initializePool(config?: unknown): unknown };
  const destroy = client.destroy.bind(client);
  const initializePool = client.initializePool.bind(client);
  client.destroy = (callback?: unknown) => destroy(callback).finally(() => release());
  client.initializePool = (config?: unknown) => {
    release();
    release = holdSqliteFiles(files, library);
    return initializePool(config);
  };
  return db;
}

export function openDatabase(config: Config, service: Service, opts: OpenOptions = {}): Db {
  if (config.database.client === 'postgres') {
    return openPostgres({
      connectionString: opts.asRole ? config.database.url : serviceDatabaseUrl(config, service),
      schema: service,
      ...(opts.asRole ? { role: opts.asRole } : {}),
      // The server cancels a statement that outlives this (a lock held
      // elsewhere), so an abandoned transaction's connection frees up in bounded time.
      statementTimeoutMs: opts.statementTimeoutMs ?? config.database.statementTimeoutMs,
      durableCommit: !config.database.allowAsyncCommit,
      pool: { min: 0, max: 10, ...(config.database.allowAsyncCommit ? {} : { afterCreate: refuseAsyncCommit }) },
    });
  }
  fs.mkdirSync(config.database.dir, { recursive: true });
  const attach = opts.attachReadModels ? READ_MODELS.map((s) => [s, sqliteFile(config, s)] as const) : [];
  // Durable means fsynced: WAL with synchronous=FULL. busy_timeout lets the
  // processes of one service on one host take turns writing.
  const pragmas = [
    'PRAGMA journal_mode = WAL',
    'PRAGMA synchronous = FULL',
    'PRAGMA busy_timeout = 5000',
    'PRAGMA foreign_keys = ON',
    ...(opts.readers ? ['PRAGMA query_only = ON'] : []),
    ...attach.map(([name, file]) => `ATTACH DATABASE '${file.replace(/'/g, "''")}' AS ${name}`),
  ].join(';\n');
  const files = [sqliteFile(config, service), ...attach.map(([, file]) => file)];
  const runner = runnerFor(config, files, opts);
  // The threaded client opens the file and runs the pragmas on its thread.
  const client = runner === 'thread' ? threadedSqliteClient(pragmas) : runner === 'sqlite3' ? ClientSqlite3 : ClientBetterSqlite3;
  const db = knexFactory({
    // The writer takes the write lock at BEGIN, so a locked file fails a batch once (src/db/sqliteImmediate.ts); not
    // with files attached, since BEGIN IMMEDIATE takes the write lock of every attached file too.
    client: opts.writer && attach.length === 0 ? immediateTransactions(client) : client,
    connection: { filename: sqliteFile(config, service) },
    useNullAsDefault: true,
    pool: {
      min: 1,
      max: opts.readers ?? 1,
      afterCreate(conn: SqliteConnection, done: (err: Error | null, conn: SqliteConnection) => void) {
        if (runner === 'thread') return done(null, conn);
        if (runner === 'sqlite3') {
          (conn as NodeSqliteConnection).exec(pragmas, (err) => done(err, conn));
          return;
        }
        // better-sqlite3 runs statements synchronously on the calling thread.
        try {
          (conn as BetterSqliteConnection).exec(pragmas);
          done(null, conn);
        } catch (err) {
          done(err as Error, conn);
        }
      },
    },
  });
  return holdWhileOpen(db, files, sqliteLibraryFor(runner));
}

/** node-postgres's Client, as the pool hands it to afterCreate. */
interface PgConnection {
  query(sql: string, cb: (err: Error | null, res: { rows: { synchronous_commit?: string }[] }) => void): void;
}

/**
 * Durable means committed with an fsync (DESIGN.md). PostgreSQL answers a
 * COMMIT before its WAL is flushed when the session's synchronous_commit is
 * off (and `local` gives up the standby's copy): such a session is refused
 * unless database.allowAsyncCommit says so. Checked on every new
 * connection, since a role or database default can change under a running
 * process; and each transaction raises a setting some other client of a
 * shared (pooled) server session left behind (src/db/postgres.ts).
 */
export class AsyncCommitError extends Error {
  constructor(readonly setting: string) {
    super(
      `PostgreSQL synchronous_commit is ${setting} for this session, so a commit could be acknowledged before it is durable: ` +
        'set synchronous_commit to on for this role or database, or set database.allowAsyncCommit to accept that',
    );
    this.name = 'AsyncCommitError';
  }
}

function asyncSetting(setting: string | undefined): setting is 'off' | 'local' {
  return setting === 'off' || setting === 'local';
}

function refuseAsyncCommit(conn: PgConnection, done: (err: Error | null, conn: PgConnection) => void): void {
  conn.query('SHOW synchronous_commit', (err, res) => {
    if (err) return done(err, conn);
    const setting = res.rows[0]?.synchronous_commit;
    done(asyncSetting(setting) ? new AsyncCommitError(setting) : null, conn);
  });
}

/**
 * At start-up: the line refusing a PostgreSQL session that commits
 * asynchronously, '' otherwise. Asked on a connection of its own, so that
 * the refusal is that one line and not the pool's connection errors. A
 * database that cannot be reached yet is not refused here (readiness
 * reports it); each new pooled connection is checked all the same.
 */
export async function asyncCommitRefusal(config: Config, service?: Service): Promise<string> {
  if (config.database.client !== 'postgres' || config.database.allowAsyncCommit) return '';
  // As the service's own role when it has one: a role's settings are its sessions'.
  const url = service ? serviceDatabaseUrl(config, service) : config.database.url;
  const probe = knexFactory({ client: 'pg', connection: { connectionString: url }, pool: { min: 0, max: 1 } });
  try {
    const setting = ((await probe.raw('SHOW synchronous_commit')) as { rows: { synchronous_commit?: string }[] }).rows[0]?.synchronous_commit;
    return asyncSetting(setting) ? new AsyncCommitError(setting).message : '';
  } catch {
    return '';
  } finally {
    await probe.destroy();
  }
}

/** node-sqlite3's Database: asynchronous, with callbacks. */
interface NodeSqliteConnection {
  exec(sql: string, cb: (err: Error | null) => void): void;
}

/** better-sqlite3's Database: synchronous, throws. */
interface BetterSqliteConnection {
  exec(sql: string): unknown;
}

type SqliteConnection = NodeSqliteConnection | BetterSqliteConnection;

/**
 * A SQLite file deleted under a running process keeps answering from the
 * unlinked inode, and everything written to it is gone at the next start:
 * this names the file when it is no longer where it was opened.
 */
export function missingDatabaseFile(db: Db): string | undefined {
  const file = sqliteFilename(db);
  return file === undefined || fs.existsSync(file) ? undefined : file;
}

/** The file a SQLite database was opened on; undefined for PostgreSQL and an in-memory database. */
export function sqliteFilename(db: Db): string | undefined {
  const file = (db.client.config as { connection?: { filename?: unknown } }).connection?.filename;
  return isSqlite(db) && typeof file === 'string' && file !== ':memory:' ? file : undefined;
}

/** Whether a pool is on SQLite, whichever of the drivers runs it. */
export function isSqlite(db: Db): boolean {
  return (db.client as { dialect?: unknown }).dialect === 'sqlite3';
}

export class DatabaseMissingError extends Error {
  constructor(readonly file: string) {
    super(`database file ${file} is missing`);
    this.name = 'DatabaseMissingError';
  }
}

/** One round trip that proves the database answers, from the file it should. */
export async function pingDatabase(db: Db): Promise<void> {
  const missing = missingDatabaseFile(db);
  if (missing) throw new DatabaseMissingError(missing);
  await db.raw('SELECT 1');
}
