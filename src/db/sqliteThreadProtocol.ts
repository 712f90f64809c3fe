/**
 * @file What the main thread and the SQLite writer's thread
 * (src/db/sqliteWriterThread.ts) say to each other: the main thread posts
 * an array of requests (or 'close'), the thread one array of their answers.
 */

/** The thread's workerData: the file it opens and the pragmas it runs first. */
export interface ThreadStart {
  filename: string;
  pragmas: string;
}

/** One statement; `exec` runs a script of several without bindings (pragmas). */
export interface ThreadRequest {
  id: number;
  sql: string;
  bindings: unknown[];
  exec?: boolean;
}

/** A statement's answer: rows for a reader, changes for the others, or the error it raised. */
export interface ThreadAnswer {
  id: number;
  rows?: unknown[];
  changes?: number;
  lastInsertRowid?: number;
  error?: { name: string; message: string; code?: string };
}
