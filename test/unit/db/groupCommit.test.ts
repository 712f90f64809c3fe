import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { loadConfig } from '../../../src/services';
import { CommitRefusedError, GroupCommit } from '../../../src/db/groupCommit';
import { openDatabase, sqliteFile } from '../../../src/db/knex';
import { isDatabaseUnavailable } from '../../../src/db/repositories/errors';
import { UnavailableError } from '../../../src/domain/errors';
import { threadedSqliteClient } from '../../../src/db/sqliteThread';
import { testBackends, type TestDatabase } from '../../support/databases';

for (const driver of ['sqlite3', 'better-sqlite3', 'thread'] as const)
  describe(`group commit (${driver === 'thread' ? 'better-sqlite3 on the writer thread' : driver})`, () => {
    let dir: string;
    let db: Knex;
    let reader: Knex;

    beforeEach(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-gc-'));
      const filename = path.join(dir, 'gc.sqlite');
      const client = driver === 'thread' ? threadedSqliteClient('PRAGMA busy_timeout = 5000') : driver;
      db = knexFactory({ client, connection: { filename }, useNullAsDefault: true, pool: { min: 1, max: 1 } });
      await db.raw('PRAGMA journal_mode = WAL');
      await db.schema.createTable('notes', (t) => {
        t.string('id').primary();
      });
      reader = knexFactory({
        client: driver === 'thread' ? 'better-sqlite3' : driver,
        connection: { filename },
        useNullAsDefault: true,
        pool: { min: 1, max: 1 },
      });
    });

    /** An insert-only write of one note, merged with its batch's others. */
    const insertNote = (gc: GroupCommit, id: string) =>
      gc.insert({ inserts: [{ table: 'notes', rows: [{ id }] }], value: id, alone: async (tx) => (await tx('notes').insert({ id }), id) });
    const noteIds = async () => (await reader('notes').select('id').orderBy('id')).map((r: { id: string }) => r.id);

    afterEach(async () => {
      await db.destroy();
      await reader.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('commits concurrent writes together, and each is visible to others once it resolves', async () => {
      const gc = new GroupCommit(db);
      const ids = Array.from({ length: 50 }, (_, i) => `n${i}`);
      await Promise.all(
        ids.map((id) =>
          gc
            .run((tx) => tx('notes').insert({ id }))
            .then(async () => {
              const seen = await reader('notes').where({ id }).first();
              expect(seen, `${id} is durable when its write resolves`).to.not.equal(undefined);
            }),
        ),
      );
      expect(gc.stats.writes).to.equal(50);
      expect(gc.stats.transactions).to.be.below(5);
    });

    it('refuses every write of a batch, and starts no transaction, while its refusal check says so', async () => {
      let refusal: Error | undefined = new UnavailableError('the database file is missing; nothing was written', 5, 'database_unavailable');
      let asked = 0;
      const gc = new GroupCommit(db, { refuseWhen: () => (asked++, refusal) });
      const outcomes = await Promise.allSettled([insertNote(gc, 'a'), insertNote(gc, 'b'), gc.run((tx) => tx('notes').insert({ id: 'c' }))]);
      expect(outcomes.map((o) => o.status)).to.deep.equal(['rejected', 'rejected', 'rejected']);
      expect((outcomes[0] as PromiseRejectedResult).reason).to.equal(refusal);
      expect(asked, 'asked once for the batch, not once per write').to.equal(1);
      expect(gc.stats.transactions).to.equal(0);
      expect(gc.health().ok).to.equal(false);
      expect(await noteIds()).to.deep.equal([]);
      refusal = undefined;
      await insertNote(gc, 'd');
      expect(await noteIds()).to.deep.equal(['d']);
      expect(gc.health().ok).to.equal(true);
    });

    it('fails a whole batch at once while another writer holds the lock, instead of waiting it out once per write', async () => {
      await db.raw('PRAGMA busy_timeout = 200');
      const gc = new GroupCommit(db);
      await insertNote(gc, 'first');
      const inserts: string[] = [];
      db.on('query', (q: { sql: string }) => {
        if (/^insert/i.test(q.sql)) inserts.push(q.sql);
      });
      const holder = await reader.transaction();
      await holder('notes').insert({ id: 'held' });
      try {
        // Merged inserts and a rerunnable write first, then writes in savepoints.
        const mixed = await Promise.allSettled([
          insertNote(gc, 'a'),
          gc.run((tx) => tx('notes').insert({ id: 'b' }), { rerunnable: true }),
          gc.run((tx) => tx('notes').insert({ id: 'c' })),
          gc.run((tx) => tx('notes').insert({ id: 'd' })),
        ]);
        expect(mixed.map((o) => o.status)).to.deep.equal(['rejected', 'rejected', 'rejected', 'rejected']);
        expect(inserts.length, `tried before failing the batch:\n${inserts.join('\n')}`).to.be.at.most(2);
        // Savepoints only: the first busy write ends the batch.
        inserts.length = 0;
        const careful = await Promise.allSettled([gc.run((tx) => tx('notes').insert({ id: 'e' })), gc.run((tx) => tx('notes').insert({ id: 'f' }))]);
        expect(careful.map((o) => o.status)).to.deep.equal(['rejected', 'rejected']);
        expect(inserts.length, inserts.join('\n')).to.equal(1);
        expect(gc.health()).to.include({ ok: false, failedInARow: 2 });
      } finally {
        await holder.rollback();
      }
      await insertNote(gc, 'after');
      expect(await noteIds()).to.deep.equal(['after', 'first']);
      expect(gc.health().ok).to.equal(true);
    });

    it('starts a lone write at once, in a transaction of its own', async () => {
      const gc = new GroupCommit(db);
      await gc.run((tx) => tx('notes').insert({ id: 'alone' }));
      expect(gc.stats).to.deep.equal({ transactions: 1, writes: 1 });
    });

    it('fails a write alone: its rows roll back, its neighbours commit', async () => {
      const gc = new GroupCommit(db);
      await gc.run((tx) => tx('notes').insert({ id: 'taken' }));
      const results = await Promise.allSettled([
        gc.run((tx) => tx('notes').insert({ id: 'a' })),
        gc.run(async (tx) => {
          await tx('notes').insert({ id: 'half' });
          await tx('notes').insert({ id: 'taken' }); // unique violation
        }),
        gc.run((tx) => tx('notes').insert({ id: 'b' })),
      ]);
      expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
      const ids = await noteIds();
      expect(ids).to.deep.equal(['a', 'b', 'taken']);
    });
    it('merges the inserts of writes that arrive together into one statement per table', async () => {
      const gc = new GroupCommit(db);
      const statements: string[] = [];
      db.on('query', (q: { sql: string }) => statements.push(q.sql));
      await gc.run((tx) => tx('notes').insert({ id: 'first' })); // holds the next ones together
      statements.length = 0;
      const values = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          gc.insert({ inserts: [{ table: 'notes', rows: [{ id: `m${i}` }] }], value: i, alone: async (tx) => (await tx('notes').insert({ id: `m${i}` }), i) }),
        ),
      );
      expect(values).to.deep.equal(Array.from({ length: 20 }, (_, i) => i));
      expect(await reader('notes').count<{ n: number }[]>({ n: '*' }).first()).to.deep.equal({ n: 21 });
      const inserts = statements.filter((sql) => /^insert/i.test(sql));
      expect(inserts.length, inserts.join('\n')).to.be.below(4);
    });

    it('fails an insert write alone when the merged insert is refused', async () => {
      const gc = new GroupCommit(db);
      await gc.run((tx) => tx('notes').insert({ id: 'taken' }));
      const write = (id: string) => insertNote(gc, id);
      const results = await Promise.allSettled([gc.run((tx) => tx('notes').insert({ id: 'fn' })), write('x'), write('taken'), write('y')]);
      expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
      const ids = await noteIds();
      expect(ids).to.deep.equal(['fn', 'taken', 'x', 'y']);
    });

    it('fails an insert write alone in a batch of inserts only', async () => {
      const gc = new GroupCommit(db);
      await gc.run((tx) => tx('notes').insert({ id: 'taken' }));
      const write = (id: string) => insertNote(gc, id);
      const results = await Promise.allSettled([write('p'), write('taken'), write('q')]);
      expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
      const ids = await noteIds();
      expect(ids).to.deep.equal(['p', 'q', 'taken']);
    });

    it('runs merged inserts and other writes in one transaction; a failing other write fails alone', async () => {
      const gc = new GroupCommit(db);
      await gc.run((tx) => tx('notes').insert({ id: 'taken' }));
      const write = (id: string) => insertNote(gc, id);
      const before = gc.stats.transactions;
      const results = await Promise.allSettled([
        write('i1'),
        gc.run(async (tx) => {
          await tx('notes').insert({ id: 'w-half' });
          await tx('notes').insert({ id: 'taken' }); // unique violation: this write alone rolls back
        }),
        write('i2'),
        gc.run((tx) => tx('notes').insert({ id: 'w-ok' })),
      ]);
      expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
      expect(gc.stats.transactions - before, 'one shared commit').to.equal(1);
      const ids = await noteIds();
      expect(ids).to.deep.equal(['i1', 'i2', 'taken', 'w-ok']);
    });

    it('runs another write once when the merged insert beside it is refused', async () => {
      const gc = new GroupCommit(db);
      await gc.run((tx) => tx('notes').insert({ id: 'taken' }));
      const write = (id: string) => insertNote(gc, id);
      let runs = 0;
      const results = await Promise.allSettled([
        write('taken'),
        gc.run(async (tx) => {
          runs++;
          await tx('notes').insert({ id: `w${runs}` });
        }),
        write('k'),
      ]);
      expect(results.map((r) => r.status)).to.deep.equal(['rejected', 'fulfilled', 'fulfilled']);
      expect(runs).to.equal(1);
      const ids = await noteIds();
      expect(ids).to.deep.equal(['k', 'taken', 'w1']);
    });

    it('sends rerunnable writes with the merged inserts, and does them again alone when one is refused', async () => {
      const gc = new GroupCommit(db);
      await gc.run((tx) => tx('notes').insert({ id: 'taken' }));
      const write = (id: string) => insertNote(gc, id);
      const statements: string[] = [];
      db.on('query', (q: { sql: string }) => statements.push(q.sql));
      const together = await Promise.all([
        write('r1'),
        gc.run(
          (tx) =>
            tx('notes')
              .insert({ id: 'r-work' })
              .then(() => 'done'),
          { rerunnable: true },
        ),
        write('r2'),
      ]);
      expect(together).to.deep.equal(['r1', 'done', 'r2']);
      expect(
        statements.filter((sql) => /savepoint/i.test(sql)),
        'no savepoint when nothing is refused',
      ).to.deep.equal([]);

      const results = await Promise.allSettled([write('r3'), gc.run((tx) => tx('notes').insert({ id: 'taken' }), { rerunnable: true }), write('r4')]);
      expect(results.map((r) => r.status)).to.deep.equal(['fulfilled', 'rejected', 'fulfilled']);
      const ids = await noteIds();
      expect(ids).to.deep.equal(['r-work', 'r1', 'r2', 'r3', 'r4', 'taken']);
    });

    it('answers an insert write only after its commit, with what alone would have done', async () => {
      const gc = new GroupCommit(db);
      // The merged insert is refused for "stale"; alone, the write clears it first.
      await gc.run((tx) => tx('notes').insert({ id: 'stale' }));
      const alone = async (tx: Knex.Transaction) => {
        await tx('notes').where({ id: 'stale' }).delete();
        await tx('notes').insert({ id: 'stale' });
        return 'replaced';
      };
      const [, a, b] = await Promise.all([
        gc.run((tx) => tx('notes').insert({ id: 'ahead' })), // the next two wait for it, then go together
        gc.insert({ inserts: [{ table: 'notes', rows: [{ id: 'stale' }] }], value: 'merged', alone }),
        gc.insert({
          inserts: [{ table: 'notes', rows: [{ id: 'other' }] }],
          value: 'merged',
          alone: async (tx) => (await tx('notes').insert({ id: 'other' }), 'alone'),
        }),
      ]);
      expect([a, b]).to.deep.equal(['replaced', 'alone']);
      expect(await reader('notes').whereIn('id', ['stale', 'other']).count<{ n: number }[]>({ n: '*' }).first()).to.deep.equal({ n: 2 });
    });
  });

// A constraint checked only at COMMIT: the way to have the database refuse the commit itself.
const DEFERRED_TABLES = [
  'CREATE TABLE parents (id VARCHAR(36) PRIMARY KEY)',
  'CREATE TABLE children (id VARCHAR(36) PRIMARY KEY, parent_id VARCHAR(36) NOT NULL REFERENCES parents(id) DEFERRABLE INITIALLY DEFERRED)',
];

for (const backend of testBackends(
  'api',
  {
    create: async (db) => {
      for (const sql of DEFERRED_TABLES) await db.raw(sql);
    },
  },
  ['sqlite3', 'better-sqlite3', 'thread'],
)) {
  describe(`group commit after a refused COMMIT (${backend.name})`, () => {
    let testDb: TestDatabase;
    let db: Knex;

    beforeEach(async () => {
      testDb = await backend.open();
      db = testDb.db;
    });
    afterEach(async () => {
      await testDb.close();
    });

    const orphan = (gc: GroupCommit, id: string) => gc.run((tx) => tx('children').insert({ id, parent_id: 'no-such-parent' }));
    const parent = (gc: GroupCommit, id: string) => gc.run((tx) => tx('parents').insert({ id }));

    it('rolls back, answers the whole batch 503, reports the writer, and commits the next write', async () => {
      const gc = new GroupCommit(db);
      await parent(gc, 'p0');
      expect(gc.health()).to.include({ ok: true, failedInARow: 0 });
      // Both in one transaction: the orphan passes every statement and is refused at COMMIT, taking its neighbour with it.
      const refused = await Promise.allSettled([parent(gc, 'p1'), orphan(gc, 'c1')]);
      for (const r of refused) {
        expect(r.status).to.equal('rejected');
        const err = (r as PromiseRejectedResult).reason;
        expect(err).to.be.instanceOf(CommitRefusedError);
        expect(err).to.be.instanceOf(UnavailableError); // answered 503 with Retry-After
      }
      expect(gc.health()).to.include({ ok: false, failedInARow: 1 });
      expect(gc.health().lastFailure).to.match(/foreign key|violates/i);

      // The writer is usable again: the next writes commit, and nothing of the refused batch was kept.
      await parent(gc, 'p2');
      await Promise.all([parent(gc, 'p3'), parent(gc, 'p4')]);
      expect(gc.health()).to.include({ ok: true, failedInARow: 0 });
      expect((await db('parents').select('id').orderBy('id')).map((r: { id: string }) => r.id)).to.deep.equal(['p0', 'p2', 'p3', 'p4']);
      expect(await db('children').select('id')).to.deep.equal([]);
    });

    it('stays usable after a refused COMMIT on the careful path (a lone write) and on the fast path (merged inserts)', async () => {
      const gc = new GroupCommit(db);
      const [alone] = await Promise.allSettled([orphan(gc, 'alone')]);
      expect(alone.status === 'rejected' && alone.reason).to.be.instanceOf(CommitRefusedError);
      await parent(gc, 'after-alone');
      const merged = await Promise.allSettled([
        gc.insert({
          inserts: [{ table: 'children', rows: [{ id: 'm1', parent_id: 'none' }] }],
          value: 'm1',
          alone: async (tx) => (await tx('children').insert({ id: 'm1', parent_id: 'none' }), 'm1'),
        }),
        gc.insert({
          inserts: [{ table: 'parents', rows: [{ id: 'm2' }] }],
          value: 'm2',
          alone: async (tx) => (await tx('parents').insert({ id: 'm2' }), 'm2'),
        }),
      ]);
      expect(merged.map((r) => r.status === 'rejected' && r.reason instanceof CommitRefusedError)).to.deep.equal([true, true]);
      await parent(gc, 'after-merged');
      expect((await db('parents').select('id').orderBy('id')).map((r: { id: string }) => r.id)).to.deep.equal(['after-alone', 'after-merged']);
    });
  });
}

for (const driver of ['sqlite3', 'better-sqlite3', 'auto'] as const)
  describe(`group commit on the API's writer (openDatabase writer: true, sqliteDriver ${driver})`, () => {
    let dir: string;
    let db: Knex;
    let other: Knex;

    beforeEach(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-gcw-'));
      const config = loadConfig({ WARREN_DATABASE_DIR: dir, WARREN_DATABASE_SQLITE_DRIVER: driver });
      db = openDatabase(config, 'api', { writer: true });
      await db.schema.createTable('notes', (t) => {
        t.string('id').primary();
      });
      // Another writer of the same file, as a backup or a migration would be (the same SQLite library as the writer's:
      // in one process, two copies of SQLite do not see each other's locks).
      other = knexFactory({
        client: driver === 'sqlite3' ? 'sqlite3' : 'better-sqlite3',
        connection: { filename: sqliteFile(config, 'api') },
        useNullAsDefault: true,
        pool: { min: 1, max: 1 },
      });
    });

    afterEach(async () => {
      await db.destroy();
      await other.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('takes the write lock at BEGIN: while another writer holds it, a batch fails once, before any of its statements', async () => {
      await db.raw('PRAGMA busy_timeout = 200');
      const gc = new GroupCommit(db);
      const statements: string[] = [];
      db.on('query', (q: { sql: string }) => statements.push(q.sql));
      await gc.run((tx) => tx('notes').insert({ id: 'first' }));
      expect(statements[0]).to.match(/^BEGIN IMMEDIATE/);
      const holder = await other.transaction();
      await holder('notes').insert({ id: 'held' });
      statements.length = 0;
      try {
        const outcomes = await Promise.allSettled([
          gc.insert({ inserts: [{ table: 'notes', rows: [{ id: 'a' }] }], value: 'a', alone: async (tx) => (await tx('notes').insert({ id: 'a' }), 'a') }),
          gc.run((tx) => tx('notes').insert({ id: 'b' }), { rerunnable: true }),
          gc.run((tx) => tx('notes').insert({ id: 'c' })),
        ]);
        for (const o of outcomes) {
          expect(o.status).to.equal('rejected');
          expect(isDatabaseUnavailable((o as PromiseRejectedResult).reason), String((o as PromiseRejectedResult).reason)).to.equal(true);
        }
        expect(
          statements.filter((sql) => /^insert/i.test(sql)),
          'no statement of the batch ran',
        ).to.deep.equal([]);
        expect(gc.health()).to.include({ ok: false, failedInARow: 1 });
      } finally {
        await holder.rollback();
      }
      await gc.run((tx) => tx('notes').insert({ id: 'after' }));
      expect(gc.health().ok).to.equal(true);
      expect((await db('notes').select('id').orderBy('id')).map((r: { id: string }) => r.id)).to.deep.equal(['after', 'first']);
    });
  });
