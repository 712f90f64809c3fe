/**
 * @file Warren's PostgreSQL connections keep nothing on the session: the
 * schema, the statement timeout, the role and a durable commit hold in every
 * transaction and every statement outside one, and the server session is
 * left as it was found, so they work through a transaction pooler (run with
 * WARREN_TEST_PG_URL pointing at PgBouncer) as on a direct connection.
 */
import crypto from 'node:crypto';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { openPostgres, type TransactionSettings } from '../../../src/db/postgres';

/** node-postgres's Client as the pool holds it: asked directly, it shows the session's own settings. */
interface DriverConnection {
  query(sql: string): Promise<{ rows: Record<string, string>[] }>;
}

describe('PostgreSQL connections without session state', function () {
  const pgUrl = process.env.WARREN_TEST_PG_URL;
  const suffix = crypto.randomBytes(4).toString('hex');
  const schemas = [`warren_sessionless_a_${suffix}`, `warren_sessionless_b_${suffix}`];
  const role = `warren_sessionless_${suffix}`;
  // Its own login, so the asynchronous session the durability test leaves behind sits in a pool no other test draws from.
  const loose = `warren_sessionless_loose_${suffix}`;
  let admin: Knex;
  const opened: Knex[] = [];

  before(async function () {
    if (!pgUrl) this.skip();
    admin = knexFactory({ client: 'pg', connection: pgUrl, pool: { min: 0, max: 1 } });
    await admin.raw('CREATE ROLE ?? NOLOGIN', [role]);
    await admin.raw('CREATE ROLE ?? LOGIN', [loose]);
    for (const schema of schemas) {
      await admin.raw('CREATE SCHEMA ??', [schema]);
      await admin.raw('CREATE TABLE ??.owner (name text NOT NULL)', [schema]);
      await admin.raw('INSERT INTO ??.owner (name) VALUES (?)', [schema, schema]);
      await admin.raw('GRANT USAGE, CREATE ON SCHEMA ?? TO ??', [schema, role]);
    }
  });

  after(async () => {
    await Promise.all(opened.map((db) => db.destroy()));
    if (!admin) return;
    for (const schema of schemas) await admin.raw('DROP SCHEMA IF EXISTS ?? CASCADE', [schema]);
    await admin.raw('DROP ROLE IF EXISTS ??', [role]);
    await admin.raw('DROP ROLE IF EXISTS ??', [loose]);
    await admin.destroy();
  });

  function open(settings: Partial<TransactionSettings> = {}, max = 1, connectionString = pgUrl!): Knex {
    const db = openPostgres({ connectionString, schema: schemas[0]!, ...settings, pool: { min: 0, max } });
    opened.push(db);
    return db;
  }

  /** A question put to the driver connection itself, outside any transaction of Warren's. */
  async function askSession(db: Knex, sql: string): Promise<string> {
    const conn = (await db.client.acquireConnection()) as DriverConnection;
    try {
      return Object.values((await conn.query(sql)).rows[0]!)[0]!;
    } finally {
      await db.client.releaseConnection(conn);
    }
  }

  it('resolves unqualified names in its schema, in a transaction and outside one, and sets no search_path on the session', async () => {
    const db = open();
    expect(await db('owner').pluck('name')).to.deep.equal([schemas[0]]);
    expect(await db.transaction((tx) => tx('owner').pluck('name'))).to.deep.equal([schemas[0]]);
    await db('owner').insert({ name: 'written outside a transaction' });
    expect(await admin.withSchema(schemas[0]!).from('owner').pluck('name')).to.include('written outside a transaction');
    expect(await askSession(db, 'SHOW search_path')).to.equal('"$user", public');
  });

  it('keeps two schemas apart on connections a pooler may hand from one to the other', async () => {
    const a = open({ schema: schemas[0]! }, 4);
    const b = open({ schema: schemas[1]! }, 4);
    const seen = await Promise.all(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? b : a)).map(async (db, i) =>
        i % 4 < 2 ? db('owner').first('name') : db.transaction((tx) => tx('owner').first('name')),
      ),
    );
    expect(seen.map((row: { name: string }) => row.name)).to.deep.equal(Array.from({ length: 40 }, (_, i) => schemas[i % 2]));
  });

  it('cancels a statement that outlives the timeout, in a transaction and outside one, and leaves the session’s timeout alone', async () => {
    const db = open({ statementTimeoutMs: 100 });
    const outside = await db.raw('SELECT pg_sleep(2)').then(
      () => 'finished',
      (err: Error) => err.message,
    );
    expect(outside).to.match(/statement timeout/);
    const inside = await db
      .transaction((tx) => tx.raw('SELECT pg_sleep(2)'))
      .then(
        () => 'finished',
        (err: Error) => err.message,
      );
    expect(inside).to.match(/statement timeout/);
    // Its connection is usable again at once: nothing was left open.
    expect((await db.raw('SELECT 1 AS one')).rows).to.deep.equal([{ one: 1 }]);
    expect(await askSession(db, 'SHOW statement_timeout')).to.equal('0');
  });

  it('acts as its role in each transaction, so what it creates is the role’s, and the session stays the login user', async () => {
    const db = open({ role });
    await db.schema.createTable('made_by_role', (t) => t.text('x'));
    const owner = await admin.raw('SELECT tableowner FROM pg_tables WHERE schemaname = ? AND tablename = ?', [schemas[0], 'made_by_role']);
    expect((owner as { rows: { tableowner: string }[] }).rows).to.deep.equal([{ tableowner: role }]);
    expect((await db.transaction((tx) => tx.raw('SELECT current_user AS u'))).rows).to.deep.equal([{ u: role }]);
    expect(await askSession(db, 'SELECT current_user')).to.not.equal(role);
  });

  it('commits durably on a session some other client left asynchronous, unless told that is accepted', async () => {
    const url = new URL(pgUrl!);
    url.username = loose;
    const durable = open({ durableCommit: true }, 1, url.toString());
    const conn = (await durable.client.acquireConnection()) as DriverConnection;
    // What a previous client of a pooled server session could leave behind.
    await conn.query('SET synchronous_commit = off');
    await durable.client.releaseConnection(conn);
    expect((await durable.raw('SHOW synchronous_commit')).rows[0].synchronous_commit).to.equal('on');
    expect((await durable.transaction((tx) => tx.raw('SHOW synchronous_commit'))).rows[0].synchronous_commit).to.equal('on');

    const relaxed = open({ durableCommit: false }, 1, url.toString());
    const relaxedConn = (await relaxed.client.acquireConnection()) as DriverConnection;
    await relaxedConn.query('SET synchronous_commit = off');
    await relaxed.client.releaseConnection(relaxedConn);
    expect((await relaxed.raw('SHOW synchronous_commit')).rows[0].synchronous_commit).to.equal('off');
    await relaxedConn.query('RESET synchronous_commit');
  });

  it('fails a statement outside a transaction whose commit is refused, and keeps nothing of it', async () => {
    const db = open();
    await db.raw('CREATE TABLE deferred_unique (id int, CONSTRAINT one_id UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)');
    const refused = await db.raw('INSERT INTO deferred_unique (id) VALUES (1), (1)').then(
      () => 'committed',
      (err: Error) => err.message,
    );
    expect(refused).to.match(/one_id/);
    expect(await db('deferred_unique').count<{ n: string }[]>({ n: '*' })).to.deep.equal([{ n: '0' }]);
    expect(await askSession(db, "SELECT CASE WHEN pg_current_xact_id_if_assigned() IS NULL THEN 'idle' ELSE 'in a transaction' END")).to.equal('idle');
  });
});
