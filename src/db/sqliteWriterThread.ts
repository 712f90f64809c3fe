/**
 * @file The SQLite writer's thread: one better-sqlite3 connection that runs
 * the statements the main thread sends it, one at a time, in order, and
 * answers each with its rows or its result (one message of answers for
 * each message of statements). Its fsyncs (every durable
 * COMMIT) block this thread, never the event loop that parses requests.
 * Started by src/db/sqliteThread.ts; not a module for anything else.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { ThreadAnswer, ThreadRequest, ThreadStart } from './sqliteThreadProtocol';

const start = workerData as ThreadStart;
const port = parentPort;
if (!port) throw new Error('sqliteWriterThread runs only as a worker thread');

let db: Database.Database;
try {
  db = new Database(start.filename);
  db.exec(start.pragmas);
} catch (err) {
  // The main thread's first statement gets this as its answer.
  port.postMessage([{ id: 0, error: describe(err) }] satisfies ThreadAnswer[]);
  throw err;
}

// Prepared once per distinct SQL text: the group commit's statements repeat
// (an INSERT per table of a given row count, BEGIN, COMMIT, the relay's claims).
const statements = new Map<string, Database.Statement>();
const MAX_STATEMENTS = 500;

function prepared(sql: string): Database.Statement {
  let statement = statements.get(sql);
  if (!statement) {
    if (statements.size >= MAX_STATEMENTS) statements.clear();
    statement = db.prepare(sql);
    statements.set(sql, statement);
  }
  return statement;
}

function describe(err: unknown): NonNullable<ThreadAnswer['error']> {
  const e = err as { name?: unknown; message?: unknown; code?: unknown };
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(err),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
  };
}

function answer(request: ThreadRequest): ThreadAnswer {
  try {
    if (request.exec) {
      db.exec(request.sql);
      return { id: request.id };
    }
    const statement = prepared(request.sql);
    if (statement.reader) return { id: request.id, rows: statement.all(request.bindings) as unknown[] };
    const result = statement.run(request.bindings);
    return { id: request.id, changes: result.changes, lastInsertRowid: Number(result.lastInsertRowid) };
  } catch (err) {
    return { id: request.id, error: describe(err) };
  }
}

port.on('message', (requests: ThreadRequest[] | 'close') => {
  if (requests === 'close') {
    statements.clear();
    db.close();
    port.close();
    return;
  }
  port.postMessage(requests.map(answer));
});
