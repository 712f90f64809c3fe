import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { GroupCommit } from '../../src/db/groupCommit';
import { openDatabase } from '../../src/db/knex';
import { ThreadConnection } from '../../src/db/sqliteThread';
import { loadConfig } from '../../src/services';

/**
 * An experiment, not part of `npm run bench`: what one small durable
 * transaction costs in CPU (this process, every thread), one after another
 * with nothing to share a commit with, as each request and each relay claim
 * and mark are at a moderate rate. A group commit of one insert through
 * knex on each writer, then the same three statements (BEGIN IMMEDIATE,
 * INSERT, COMMIT) sent straight to the writer's thread, then one bare round
 * trip to that thread. The differences are knex's transaction and the
 * group commit's own work. Run: `node dist/bench/experiments/transactionCost.js`.
 */
const N = 1000;

async function time(label: string, fn: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < 100; i++) await fn();
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await fn();
  const used = process.cpuUsage(cpu);
  const wallUs = Number(process.hrtime.bigint() - started) / 1000 / N;
  console.log(`${label.padEnd(46)} wall ${wallUs.toFixed(0).padStart(5)} µs, CPU ${((used.user + used.system) / N).toFixed(0).padStart(5)} µs`);
}

async function main(): Promise<void> {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-txcost-'));
    dirs.push(dir);
    return dir;
  };
  try {
    for (const driver of ['auto', 'better-sqlite3', 'sqlite3'] as const) {
      const config = loadConfig({ WARREN_DATABASE_DIR: tempDir(), WARREN_DATABASE_SQLITE_DRIVER: driver });
      const db = openDatabase(config, 'api', { writer: true });
      try {
        await db.raw('CREATE TABLE notes (id INTEGER PRIMARY KEY, v TEXT)');
        const writes = new GroupCommit(db);
        const name = driver === 'auto' ? 'the thread (auto)' : driver;
        await time(`${name}: a group commit of one insert`, () => writes.run((tx) => tx('notes').insert({ v: 'x' })));
      } finally {
        await db.destroy();
      }
    }
    const conn = new ThreadConnection({ filename: path.join(tempDir(), 'raw.sqlite'), pragmas: 'PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL' });
    try {
      await conn.send('CREATE TABLE notes (id INTEGER PRIMARY KEY, v TEXT)', []);
      await time('the thread, no knex: BEGIN, INSERT, COMMIT', async () => {
        await conn.send('BEGIN IMMEDIATE', []);
        await conn.send('INSERT INTO notes (v) VALUES (?)', ['x']);
        await conn.send('COMMIT', []);
      });
      await time('the thread, no knex: one round trip (SELECT 1)', () => conn.send('SELECT 1', []));
    } finally {
      await conn.close();
    }
  } finally {
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
