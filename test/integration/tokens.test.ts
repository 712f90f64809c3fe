import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import knexFactory from 'knex';
import { openDatabase } from '../../src/db/knex';
import { SERVICES } from '../../src/services';
import { TestSystem, TEST_DB, type WarrenProcess } from '../support/system';

/**
 * Tokens on the real API process and database. No usable token at rest: a
 * sign-up with an Idempotency-Key is replayed with its token, yet no row of
 * any table (and on SQLite no byte of any database or WAL file) holds the
 * token or the key that would unseal it. And the cap on active tokens holds
 * when many are asked for at once.
 */
describe(`tokens on the real database (${TEST_DB})`, function () {
  this.timeout(90_000);
  const sys = new TestSystem();
  let api: WarrenProcess;

  before(async () => {
    await sys.setUp();
    api = await sys.startApi();
  });
  after(async () => {
    await sys.tearDown();
  });

  /** Every row of every table the system's databases hold, as text. */
  async function everyRow(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    if (TEST_DB === 'postgres') {
      const db = knexFactory({ client: 'pg', connection: sys.config.database.url });
      try {
        const tables = (await db('information_schema.tables')
          .select('table_schema', 'table_name')
          .whereNotIn('table_schema', ['pg_catalog', 'information_schema'])) as {
          table_schema: string;
          table_name: string;
        }[];
        expect(tables.map((t) => `${t.table_schema}.${t.table_name}`)).to.include.members(['api.idempotency_keys', 'api.tokens']);
        for (const t of tables) out[`${t.table_schema}.${t.table_name}`] = JSON.stringify(await db.withSchema(t.table_schema).from(t.table_name).select());
      } finally {
        await db.destroy();
      }
      return out;
    }
    for (const service of SERVICES) {
      const db = openDatabase(sys.config, service);
      try {
        const tables = ((await db.raw("SELECT name FROM sqlite_master WHERE type = 'table'")) as { name: string }[]).map((t) => t.name);
        for (const table of tables) out[`${service}.${table}`] = JSON.stringify(await db(table).select());
      } finally {
        await db.destroy();
      }
    }
    expect(Object.keys(out)).to.include.members(['api.idempotency_keys', 'api.tokens']);
    return out;
  }

  it('replays a sign-up with a working token, and no table or database file holds the token or the key', async () => {
    const key = crypto.randomUUID();
    const body = { handle: `rest_${crypto.randomBytes(3).toString('hex')}`, displayName: 'At Rest' };
    const first = await sys.request('POST', '/users', { body, headers: { 'idempotency-key': key } });
    expect(first.status, first.text).to.equal(201);
    const token: string = first.json.token;
    expect(token).to.match(/^wrn_/);

    if (TEST_DB === 'sqlite') {
      // The raw bytes first, while the API holds its WAL open (a connection of ours could checkpoint it away).
      const dir = sys.config.database.dir;
      const files = fs.readdirSync(dir);
      expect(files, 'the api database and its WAL').to.include.members(['api.sqlite', 'api.sqlite-wal']);
      for (const file of files) {
        const bytes = fs.readFileSync(path.join(dir, file));
        expect(bytes.includes(token), file).to.equal(false);
        expect(bytes.includes(key), file).to.equal(false);
      }
    }
    for (const [table, rows] of Object.entries(await everyRow())) {
      expect(rows.includes(token), table).to.equal(false);
      expect(rows.includes(key), table).to.equal(false);
    }
    expect(api.output.join('\n'), 'the API’s log').to.not.include(token);

    const replay = await sys.request('POST', '/users', { body, headers: { 'idempotency-key': key } });
    expect(replay.status).to.equal(201);
    expect(replay.headers.get('idempotent-replayed')).to.equal('true');
    expect(replay.json).to.deep.equal(first.json);
    const used = await sys.request('PATCH', `/users/${first.json.user.id}`, { token: replay.json.token, body: { bio: 'signed up once' } });
    expect(used.status, used.text).to.equal(200);
  });

  it('issues at most auth.maxTokens active tokens to requests that arrive together, 409 to the rest', async () => {
    const user = await sys.createUser(`cap_${crypto.randomBytes(3).toString('hex')}`);
    const answers = await Promise.all(Array.from({ length: 30 }, () => sys.request('POST', `/users/${user.id}/tokens`, { token: user.token })));
    const statuses = answers.map((a) => a.status);
    expect(
      statuses.filter((s) => s === 201),
      statuses.join(','),
    ).to.have.length(sys.config.auth.maxTokens - 1);
    expect(statuses.filter((s) => s === 409)).to.have.length(30 - (sys.config.auth.maxTokens - 1));
    const listed = await sys.request('GET', `/users/${user.id}/tokens`, { token: user.token });
    expect(listed.json.items).to.have.length(sys.config.auth.maxTokens);
    expect((await sys.request('DELETE', `/users/${user.id}/tokens`, { token: user.token })).status).to.equal(204);
    for (const a of answers.filter((x) => x.status === 201).slice(0, 3)) {
      expect((await sys.request('GET', `/users/${user.id}/tokens`, { token: a.json.token })).status).to.equal(401);
    }
  });
});
