import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { GroupCommit } from '../../../src/db/groupCommit';
import { isDatabaseUnavailable, isUniqueViolation } from '../../../src/db/repositories/errors';
import { threadedSqliteClient, WriterThreadError } from '../../../src/db/sqliteThread';

/** The SQLite writer on a thread of its own: what crosses to the thread comes back as the driver would give it, and its death is a writer's failure. */
describe('SQLite on the writer thread', () => {
  let dir: string;
  let filename: string;
  let db: Knex;
  let reader: Knex;

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-thread-'));
    filename = path.join(dir, 'writer.sqlite');
    db = knexFactory({
      client: threadedSqliteClient('PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 2000'),
      connection: { filename },
      useNullAsDefault: true,
      pool: { min: 1, max: 1 },
    });
    await db.schema.createTable('notes', (t) => {
      t.string('id').primary();
      t.integer('n');
    });
    reader = knexFactory({ client: 'better-sqlite3', connection: { filename }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
  });

  afterEach(async () => {
    await db.destroy();
    await reader.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The pool's one connection: the thread every statement of `db` runs on. */
  async function writerThread(): Promise<Worker> {
    const conn: unknown = await db.client.acquireConnection();
    await db.client.releaseConnection(conn);
    // The connection's thread is private to it; only this test reaches in, to kill it as a crash would.
    return (conn as { worker: Worker }).worker;
  }

  it('runs the pragmas it was given on the file, before any statement', async () => {
    expect(await db.raw('PRAGMA journal_mode')).to.deep.equal([{ journal_mode: 'wal' }]);
    expect(await db.raw('PRAGMA synchronous')).to.deep.equal([{ synchronous: 2 }]); // FULL
  });

  it('answers selects with rows, writes with their counts, and RETURNING with the rows written', async () => {
    expect(
      await db('notes').insert([
        { id: 'a', n: 1 },
        { id: 'b', n: 2 },
      ]),
    ).to.deep.equal([2]); // the last rowid
    expect(await db('notes').where({ id: 'a' }).update({ n: 10 })).to.equal(1);
    expect(await db('notes').insert({ id: 'c', n: 3 }).returning(['id', 'n'])).to.deep.equal([{ id: 'c', n: 3 }]);
    expect(await db('notes').select('id', 'n').orderBy('id')).to.deep.equal([
      { id: 'a', n: 10 },
      { id: 'b', n: 2 },
      { id: 'c', n: 3 },
    ]);
    expect(await db('notes').where({ id: 'b' }).del()).to.equal(1);
    expect(await db('notes').where({ id: 'zz' }).first()).to.equal(undefined);
  });

  it("keeps better-sqlite3's errors: a taken key is a unique violation, not an outage", async () => {
    await db('notes').insert({ id: 'a', n: 1 });
    const err = await db('notes')
      .insert({ id: 'a', n: 2 })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).to.have.property('code', 'SQLITE_CONSTRAINT_PRIMARYKEY');
    expect(isUniqueViolation(err)).to.equal(true);
    expect(isDatabaseUnavailable(err)).to.equal(false);
  });

  it('commits a transaction only at COMMIT, and a rollback leaves nothing', async () => {
    await db.transaction(async (tx) => {
      await tx('notes').insert({ id: 'in-tx', n: 1 });
      expect(await reader('notes').select('id'), 'not visible before COMMIT').to.deep.equal([]);
    });
    expect(await reader('notes').select('id')).to.deep.equal([{ id: 'in-tx' }]);
    await db
      .transaction(async (tx) => {
        await tx('notes').insert({ id: 'rolled-back', n: 1 });
        throw new Error('undo');
      })
      .catch(() => undefined);
    expect(await reader('notes').select('id')).to.deep.equal([{ id: 'in-tx' }]);
  });

  it('a thread that dies mid-batch fails that batch as an outage, reports the writer, and the next write commits on a new thread', async () => {
    const gc = new GroupCommit(db);
    await gc.run((tx) => tx('notes').insert({ id: 'before', n: 1 }));
    const first = await writerThread();

    let inserted!: () => void;
    const insertedYet = new Promise<void>((resolve) => (inserted = resolve));
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const write = gc.run(async (tx) => {
      await tx('notes').insert({ id: 'lost-with-thread', n: 1 });
      inserted();
      await held;
      await tx('notes').insert({ id: 'after-death', n: 1 });
    });
    const outcome = write.then(
      () => undefined,
      (e: unknown) => e,
    );
    await insertedYet;
    await first.terminate();
    release();

    const err = await outcome;
    expect(err).to.be.instanceOf(WriterThreadError);
    expect(isDatabaseUnavailable(err), 'answered 503, not 500').to.equal(true);
    const health = gc.health();
    expect(health.ok, 'readiness reports the writer').to.equal(false);
    expect(health.lastFailure).to.match(/writer's thread/);

    // The pool sets the dead connection aside: a new thread, the same file, nothing of the lost transaction.
    await gc.run((tx) => tx('notes').insert({ id: 'next', n: 1 }));
    expect(await writerThread()).to.not.equal(first);
    expect(gc.health().ok).to.equal(true);
    expect((await reader('notes').select('id').orderBy('id')).map((r: { id: string }) => r.id)).to.deep.equal(['before', 'next']);
  });

  it('sends the statements issued side by side in one message, and answers each on its own, in order', async () => {
    const thread = await writerThread();
    const posted: unknown[] = [];
    const post = thread.postMessage.bind(thread);
    thread.postMessage = (value: unknown) => (posted.push(value), post(value));
    // In one transaction, as the group commit sends its merged inserts and the relay's writes: one connection.
    const [first, taken, third, rows] = await db.transaction((tx) =>
      Promise.allSettled([
        tx('notes').insert({ id: 'x', n: 1 }),
        tx('notes').insert({ id: 'x', n: 2 }), // the same key: refused, alone
        tx('notes').insert({ id: 'y', n: 3 }),
        tx('notes').select('id', 'n').orderBy('id'),
      ]),
    );
    const sent = posted.map((m) => (m as { sql: string }[]).map((r) => r.sql.split(' ')[0]!.toLowerCase().replace(/;$/, '')));
    expect(sent, 'BEGIN, the four together, COMMIT').to.deep.equal([['begin'], ['insert', 'insert', 'insert', 'select'], ['commit']]);
    expect(first.status).to.equal('fulfilled');
    expect(taken.status).to.equal('rejected');
    expect(isUniqueViolation((taken as PromiseRejectedResult).reason)).to.equal(true);
    expect(third.status).to.equal('fulfilled');
    expect((rows as PromiseFulfilledResult<unknown>).value, 'run in the order sent').to.deep.equal([
      { id: 'x', n: 1 },
      { id: 'y', n: 3 },
    ]);
    expect(await reader('notes').select('id').orderBy('id')).to.deep.equal([{ id: 'x' }, { id: 'y' }]);
  });

  it('refuses every statement once closed', async () => {
    const conn: unknown = await db.client.acquireConnection();
    await db.client.releaseConnection(conn);
    await (conn as { close(): Promise<void> }).close();
    const err = await (conn as { send(sql: string, b: unknown[]): Promise<unknown> }).send('SELECT 1', []).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(WriterThreadError);
  });
});
