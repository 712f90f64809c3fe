import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { openDatabase } from '../../src/db/knex';
import { lockStore } from '../support/locks';
import { TestSystem, waitFor } from '../support/system';

/**
 * The API's own database locked by another writer (a long migration, a
 * backup holding a write lock): writes answer 503 with a clear error and
 * leave nothing half-written; readiness says so; all is well once released.
 */
describe('faults: the API database locked or gone', function () {
  this.timeout(120_000);
  const sys = new TestSystem();

  before(async () => {
    await sys.setUp();
    await sys.startApi();
  });

  after(async () => {
    await sys.tearDown();
  });

  async function committed(): Promise<{ tweets: number; events: number }> {
    const db = openDatabase(sys.config, 'api');
    try {
      const tweets = Number((await db('tweets').count({ n: '*' }))[0]?.n ?? 0);
      const events = Number((await db('outbox').where({ type: 'tweet.created' }).count({ n: '*' }))[0]?.n ?? 0);
      return { tweets, events };
    } finally {
      await db.destroy();
    }
  }

  it('9. answers 503 with Retry-After while locked, writes nothing half, and recovers', async function () {
    if (sys.config.database.client !== 'sqlite') this.skip();
    const ada = await sys.createUser(`lock_${Date.now().toString(36).slice(-6)}`);
    const release = await lockStore(sys.config, 'api', 'idempotency_keys');
    try {
      const before = await committed();
      const writing = sys.request('POST', '/tweets', { token: ada.token, body: { text: 'while locked' } });
      const ready = await waitFor(
        'readiness to report the database',
        async () => {
          const res = await sys.request('GET', '/readyz');
          return res.status === 503 ? res : undefined;
        },
        10_000,
      );
      expect(JSON.stringify(ready.json.checks.find((c: { name: string }) => c.name === 'database'))).to.match(/database/);
      const res = await writing;
      expect(res.status).to.equal(503);
      expect(res.json.error.code).to.equal('database_unavailable');
      expect(res.headers.get('retry-after')).to.match(/^\d+$/);
      expect(await committed()).to.deep.equal(before);
    } finally {
      await release();
    }
    const after = await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'after the lock' } });
    expect(after.status).to.equal(201);
    const c = await committed();
    expect(c.tweets, 'every tweet has its event').to.equal(c.events);
    await waitFor('readiness database check to pass again', async () => {
      const r = await sys.request('GET', '/readyz');
      return r.json.checks.find((x: { name: string }) => x.name === 'database').ok === true;
    });
  });

  it('9b. refuses writes with 503 and turns not ready, instead of writing into a file that is gone', async function () {
    if (sys.config.database.client !== 'sqlite') this.skip();
    const ada = await sys.createUser(`gone_${Date.now().toString(36).slice(-6)}`);
    const file = path.join(sys.config.database.dir, 'api.sqlite');
    fs.renameSync(file, `${file}.moved`);
    try {
      const res = await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'into the void' } });
      expect(res.status).to.equal(503);
      expect(res.json.error.code).to.equal('database_unavailable');
      expect(res.json.error.message).to.include('missing');
      const ready = await sys.request('GET', '/readyz');
      expect(ready.status).to.equal(503);
      expect(JSON.stringify(ready.json)).to.include('missing');
    } finally {
      fs.renameSync(`${file}.moved`, file);
    }
    expect((await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'back' } })).status).to.equal(201);
  });
});
