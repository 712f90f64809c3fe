/**
 * @file SQLite on a thread of its own: a knex client whose connection is a
 * worker thread holding one better-sqlite3 connection
 * (src/db/sqliteWriterThread.ts). The main thread compiles the SQL (knex,
 * as for every other client) and hands the statements of one turn over in
 * one message (a group commit's merged inserts and the relay's writes are
 * sent together); the thread prepares each once, runs them in order and
 * answers them in one message. A message costs the main thread tens of
 * microseconds whatever it holds, so sending them one by one cost more
 * than the statements did. A durable COMMIT's
 * fsync blocks that thread, never the event loop that parses the next
 * requests, and the driver's work leaves the main thread.
 *
 * A thread that dies is a connection that failed: every statement it held
 * or is sent afterwards is refused with WriterThreadError (answered 503 by
 * the API, counted against the writer's health), and knex's pool replaces
 * the connection with a new thread at the next acquire.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import ClientBetterSqlite3 from 'knex/lib/dialects/better-sqlite3';
import type { ThreadAnswer, ThreadRequest, ThreadStart } from './sqliteThreadProtocol';

/** The writer's thread is gone (it crashed, or was closed): nothing it had not answered committed. */
export class WriterThreadError extends Error {
  /** Read by isDatabaseUnavailable: the database cannot answer now, the request may be tried again. */
  readonly code = 'WARREN_WRITER_THREAD';
  constructor(message: string) {
    super(message);
    this.name = 'WriterThreadError';
  }
}

interface Waiting {
  resolve(answer: ThreadAnswer): void;
  reject(err: Error): void;
}

/** The main thread's side of one thread: statements out, answers back in order, and the thread's end. */
export class ThreadConnection {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, Waiting>();
  // Statements sent since the last message: posted together once this turn's promise jobs are done (flush).
  private outgoing: ThreadRequest[] = [];
  private nextId = 1;
  private ended: WriterThreadError | undefined;
  private readonly exited: Promise<void>;

  constructor(start: ThreadStart) {
    this.worker = new Worker(path.join(__dirname, 'sqliteWriterThread.js'), { workerData: start });
    this.worker.on('message', (answers: ThreadAnswer[]) => {
      for (const answer of answers) {
        if (answer.id === 0 && answer.error) return this.end(`the SQLite writer's thread could not open ${start.filename}: ${answer.error.message}`);
        const waiting = this.waiting.get(answer.id);
        if (!waiting) continue;
        this.waiting.delete(answer.id);
        waiting.resolve(answer);
      }
    });
    this.worker.on('error', (err) => this.end(`the SQLite writer's thread failed: ${err.message}`));
    this.exited = new Promise((resolve) =>
      this.worker.on('exit', (code) => {
        this.end(`the SQLite writer's thread exited (code ${code})`);
        resolve();
      }),
    );
  }

  /** Whether the thread is gone; knex's pool then destroys this connection instead of handing it out. */
  get isEnded(): boolean {
    return this.ended !== undefined;
  }

  /**
   * Runs one statement (or, with `exec`, a script) on the thread. It goes
   * with the others sent in the same turn: the message leaves on
   * process.nextTick, which Node runs once the promise jobs queued so far
   * are done, so statements that knex issues side by side (each after a
   * few awaits of its own) share it. Each is still run and answered on its
   * own, in the order sent: one that fails fails alone. Only the statements
   * of one transaction ever share a message (it holds this connection until
   * it ends; outside a transaction knex holds a connection for one statement
   * at a time), so a thread that dies mid-message takes nothing committed
   * with it that had not been answered.
   */
  send(sql: string, bindings: unknown[], exec = false): Promise<ThreadAnswer> {
    if (this.ended) return Promise.reject(this.ended);
    const id = this.nextId++;
    return new Promise<ThreadAnswer>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      if (this.outgoing.length === 0) process.nextTick(() => this.flush());
      this.outgoing.push({ id, sql, bindings, ...(exec ? { exec } : {}) });
    });
  }

  /** Closes the database on the thread, after any statement still to be sent, and waits for the thread to end. */
  async close(): Promise<void> {
    this.flush();
    if (!this.ended) this.worker.postMessage('close');
    await this.exited;
  }

  private flush(): void {
    const requests = this.outgoing;
    if (requests.length === 0) return;
    this.outgoing = [];
    // Ended meanwhile: end() has refused every one of them already.
    if (!this.ended) this.worker.postMessage(requests);
  }

  /** The thread's end: every statement still waiting is refused, as is every later one. */
  private end(why: string): void {
    if (this.ended) return;
    this.ended = new WriterThreadError(why);
    for (const waiting of this.waiting.values()) waiting.reject(this.ended);
    this.waiting.clear();
    void this.worker.terminate();
  }
}

/** An error as the thread described it, shaped as better-sqlite3's own (name, message, extended code). */
function threadError(error: NonNullable<ThreadAnswer['error']>): Error {
  const err = new Error(error.message) as Error & { code?: string };
  err.name = error.name;
  if (error.code !== undefined) err.code = error.code;
  return err;
}

/**
 * knex's better-sqlite3 client with the connection on a thread: the same
 * dialect, query compiler and transactions; only where a statement runs
 * changes. `pragmas` run on the thread when it opens the file.
 */
export function threadedSqliteClient(pragmas: string): typeof ClientBetterSqlite3 {
  return class ThreadedSqliteClient extends ClientBetterSqlite3 {
    override acquireRawConnection(): Promise<object> {
      return Promise.resolve(new ThreadConnection({ filename: this.connectionSettings.filename, pragmas }));
    }

    override destroyRawConnection(conn: object): Promise<void> {
      return (conn as ThreadConnection).close();
    }

    // knex's pool asks before handing a connection out: a dead thread is replaced, not reused.
    override validateConnection(conn: object): Promise<boolean> {
      return Promise.resolve(!(conn as ThreadConnection).isEnded);
    }

    override async _query(conn: object, obj: ClientBetterSqlite3.Query): Promise<ClientBetterSqlite3.Query> {
      if (!obj.sql) throw new Error('The query is empty');
      const answer = await (conn as ThreadConnection).send(obj.sql, this._formatBindings(obj.bindings));
      if (answer.error) throw threadError(answer.error);
      if (answer.rows) {
        obj.response = answer.rows;
        return obj;
      }
      const changes = answer.changes ?? 0;
      const lastID = answer.lastInsertRowid ?? 0;
      obj.response = { changes, lastInsertRowid: lastID };
      obj.context = { lastID, changes };
      return obj;
    }
  };
}
