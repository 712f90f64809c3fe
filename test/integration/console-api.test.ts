/** @file
 * The console's JSON API on its real database (SQLite, and PostgreSQL when
 * WARREN_TEST_PG_URL is set), over HTTP: operator tokens and their roles,
 * the parked messages with search and filters, one message in full, the
 * audit log.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { recordAction } from '../../src/console/audit';
import { createConsoleApp } from '../../src/console/app';
import { indexParks } from '../../src/console/parkedIndex';
import { parkRecord } from '../../src/console/parkRecord';
import { createOperatorToken, revokeOperatorToken } from '../../src/console/operatorTokens';
import { createLogger } from '../../src/log';
import { loadConfig } from '../../src/services';
import { testBackends, type TestDatabase } from '../support/databases';
import { brokerPark, warrenPark } from '../support/parks';

const config = loadConfig({ NODE_ENV: 'test' });

for (const backend of testBackends('console', { service: 'console' })) {
  describe(`console API with operator tokens (integration, ${backend.name})`, function () {
    let database: TestDatabase;
    let db: Knex;
    let server: http.Server;
    let base = '';
    let viewer = '';
    let operator = '';
    const ids: Record<string, string> = {};

    async function call(method: string, path: string, token?: string, body?: unknown) {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- responses of many shapes, asserted field by field
      const json: any = text ? JSON.parse(text) : undefined;
      return { status: res.status, json };
    }

    before(async function () {
      database = await backend.open();
      db = database.db;
      viewer = (await createOperatorToken(db, 'viewer', 'vera', Date.now())).token;
      operator = (await createOperatorToken(db, 'operator', 'otto', Date.now())).token;
      const parks = {
        hello: warrenPark({ body: { tweetId: 't1', text: 'hello Ada, 100% sure' }, lastFailure: '2026-01-01T00:10:00.000Z' }),
        busy: warrenPark({ error: 'TransientError: database busy', body: { tweetId: 't2', text: 'second' }, lastFailure: '2026-01-01T01:00:00.000Z' }),
        traced: warrenPark({
          queue: 'notifications.user-events',
          kind: 'permanent',
          error: 'ValidationError: displayName must not be empty',
          body: { userId: 'u1' },
          headers: { traceparent: '00-feedfacefeedfacefeedfacefeedface-b7ad6b7169203331-01' },
          lastFailure: '2026-01-01T02:00:00.000Z',
        }),
        crash: brokerPark({ at: Date.parse('2026-01-01T03:00:00Z') }),
        again: warrenPark({ headers: { 'x-warren-replay-count': 1, 'x-warren-replay-id': 'r-1' }, lastFailure: '2026-01-01T04:00:00.000Z' }),
      };
      expect(await indexParks(db, Object.values(parks).map(parkRecord), Date.now())).to.equal(5);
      for (const [name, park] of Object.entries(parks)) {
        const row = (await db('parked_messages')
          .where({ message_id: park.properties.messageId as string })
          .first('id')) as { id: string };
        ids[name] = row.id;
      }
      const app = createConsoleApp({ db, config, log: createLogger('test', 'silent') });
      const handle = app.callback();
      server = http.createServer((req, res) => void handle(req, res));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });

    after(async function () {
      await new Promise((resolve) => server?.close(resolve));
      await database?.close();
    });

    const namesOf = (items: { id: string }[]) => items.map((i) => Object.keys(ids).find((k) => ids[k] === i.id));

    it('answers nothing under /api/v1/ without a valid operator token, and only liveness without one', async function () {
      expect((await call('GET', '/healthz')).status).to.equal(200);
      for (const token of [undefined, 'wrc_nope', `wrn_${'a'.repeat(43)}`, `wrc_${'a'.repeat(43)}`]) {
        for (const path of ['/api/v1/parked', `/api/v1/parked/${ids.hello}`, '/api/v1/audit', '/api/v1/nowhere']) {
          const res = await call('GET', path, token);
          expect(res.status, `${path} with ${token}`).to.equal(401);
          expect(res.json.error.code).to.equal('unauthorized');
        }
      }
      expect((await call('GET', '/readyz')).status).to.equal(503);
    });

    it('lists every parked message newest park first, each with its queue, type, kind, attempts, reason and whether it failed again after a replay', async function () {
      const res = await call('GET', '/api/v1/parked', viewer);
      expect(res.status).to.equal(200);
      expect(namesOf(res.json.items)).to.deep.equal(['again', 'crash', 'traced', 'busy', 'hello']);
      expect(res.json.nextCursor).to.equal(null);
      const [again, crash] = res.json.items;
      expect(again).to.include({ queue: 'analytics.tweets', kind: 'exhausted', attempts: 5, replayCount: 1, failedAgainAfterReplay: true, status: 'parked' });
      expect(crash).to.include({
        kind: 'crash-loop',
        reason: 'delivery_limit',
        attempts: null,
        failedAgainAfterReplay: false,
        parkedAt: '2026-01-01T03:00:00.000Z',
      });
    });

    it('finds messages by a phrase in their body or their headers, case-insensitively, % and _ as themselves', async function () {
      const search = async (q: string) => namesOf((await call('GET', `/api/v1/parked?q=${encodeURIComponent(q)}`, viewer)).json.items);
      expect(await search('HELLO ada')).to.deep.equal(['hello']);
      expect(await search('100%')).to.deep.equal(['hello']);
      expect(await search('0%_')).to.deep.equal([]);
      expect(await search('feedfacefeedface')).to.deep.equal(['traced']);
      expect(await search('displayname must not')).to.deep.equal(['traced']);
      expect(await search('no such words')).to.deep.equal([]);
    });

    it('filters by queue, kind, reason, time range and failed again after a replay, together with search', async function () {
      const list = async (query: string) => {
        const res = await call('GET', `/api/v1/parked?${query}`, viewer);
        expect(res.status, query).to.equal(200);
        return namesOf(res.json.items);
      };
      expect(await list('queue=notifications.user-events')).to.deep.equal(['traced']);
      expect(await list('kind=crash-loop')).to.deep.equal(['crash']);
      expect(await list('reason=VALIDATIONerror%3A%20display')).to.deep.equal(['traced']);
      expect(await list('reason=DATABASE%20busy')).to.deep.equal(['again', 'busy', 'hello']);
      expect(await list('from=2026-01-01T01:00:00Z&to=2026-01-01T03:00:00Z')).to.deep.equal(['traced', 'busy']);
      expect(await list('failedAgainAfterReplay=true')).to.deep.equal(['again']);
      expect(await list('queue=analytics.tweets&kind=exhausted&q=second')).to.deep.equal(['busy']);
      const bad = await call('GET', '/api/v1/parked?kind=sad&limit=500', viewer);
      expect(bad.status).to.equal(400);
      expect(bad.json.error.details.map((d: { path: string }) => d.path).sort()).to.deep.equal(['kind', 'limit']);
    });

    it('pages with an opaque cursor, and counts what a filter selects per queue', async function () {
      const first = await call('GET', '/api/v1/parked?limit=2', viewer);
      expect(namesOf(first.json.items)).to.deep.equal(['again', 'crash']);
      const second = await call('GET', `/api/v1/parked?limit=2&before=${first.json.nextCursor}`, viewer);
      expect(namesOf(second.json.items)).to.deep.equal(['traced', 'busy']);
      const third = await call('GET', `/api/v1/parked?limit=2&before=${second.json.nextCursor}`, viewer);
      expect(namesOf(third.json.items)).to.deep.equal(['hello']);
      expect(third.json.nextCursor).to.equal(null);
      expect((await call('GET', '/api/v1/parked?before=garbage', viewer)).status).to.equal(400);
      const count = await call('GET', '/api/v1/parked/count?kind=exhausted', viewer);
      expect(count.json).to.deep.equal({ total: 3, byQueue: { 'analytics.tweets': 3 } });
    });

    it('shows one message in full: the body parsed, its properties and every header, x-death included', async function () {
      const res = await call('GET', `/api/v1/parked/${ids.crash}`, viewer);
      expect(res.status).to.equal(200);
      expect(res.json.body).to.deep.equal({ tweetId: 'crash' });
      expect(res.json.bodyText).to.equal('{"tweetId":"crash"}');
      expect(res.json.properties).to.include({ type: 'tweet.created', contentType: 'application/json', correlationId: 'req-1' });
      expect(res.json.headers['x-death'][0]).to.include({ reason: 'delivery_limit', queue: 'analytics.tweets' });
      const traced = await call('GET', `/api/v1/parked/${ids.traced}`, viewer);
      expect(traced.json.headers).to.include({ 'x-warren-error-kind': 'permanent', 'x-warren-original-queue': 'notifications.user-events' });
      expect((await call('GET', '/api/v1/parked/no-such-id', viewer)).status).to.equal(404);
    });

    it('summarises what is parked by queue, kind and normalised reason', async function () {
      const res = await call('GET', '/api/v1/parked/summary', viewer);
      expect(res.status).to.equal(200);
      expect(res.json.items.map((g: { queue: string; kind: string; reason: string; count: number }) => [g.queue, g.kind, g.reason, g.count])).to.deep.equal([
        ['analytics.tweets', 'exhausted', 'TransientError: database busy', 3],
        ['analytics.tweets', 'crash-loop', 'delivery_limit', 1],
        ['notifications.user-events', 'permanent', 'ValidationError: displayName must not be empty', 1],
      ]);
    });

    it('reads the audit log newest first, in pages', async function () {
      for (const n of [1, 2, 3]) {
        await recordAction(
          db,
          { actor: 'otto', role: 'operator', action: 'replay', selection: { ids: [`m-${n}`] }, count: n, outcome: 'ok', result: { replayed: n } },
          Date.now(),
        );
      }
      const first = await call('GET', '/api/v1/audit?limit=2', viewer);
      expect(first.status).to.equal(200);
      expect(first.json.items.map((e: { count: number }) => e.count)).to.deep.equal([3, 2]);
      expect(first.json.items[0]).to.deep.include({
        actor: 'otto',
        role: 'operator',
        action: 'replay',
        selection: { ids: ['m-3'] },
        outcome: 'ok',
        result: { replayed: 3 },
      });
      const rest = await call('GET', `/api/v1/audit?limit=2&before=${first.json.nextCursor}`, viewer);
      expect(rest.json.items.map((e: { count: number }) => e.count)).to.deep.equal([1]);
      expect(rest.json.nextCursor).to.equal(null);
    });

    it('refuses every write to a viewer with 403, and lets an operator through to the route', async function () {
      for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
        const res = await call(method, '/api/v1/parked/replay', viewer, { ids: [ids.hello] });
        expect(res.status, method).to.equal(403);
        expect(res.json.error.code).to.equal('forbidden');
      }
      // Past the role check an operator meets the routes: no DELETE route is a 404 or 405, never a 403.
      expect((await call('DELETE', `/api/v1/parked/${ids.hello}`, operator)).status).to.be.oneOf([404, 405]);
      // This console was given no broker: an action answers 503, a bad body 400 first.
      expect((await call('POST', '/api/v1/parked/replay', operator, { ids: [ids.hello], dryRun: true })).status).to.equal(503);
      expect((await call('POST', '/api/v1/parked/replay', operator, { colour: 'red' })).status).to.equal(400);
    });

    it('stops taking a token once it is revoked', async function () {
      const { token } = await createOperatorToken(db, 'viewer', 'temp', Date.now());
      expect((await call('GET', '/api/v1/parked', token)).status).to.equal(200);
      expect(await revokeOperatorToken(db, 'temp', Date.now())).to.equal(true);
      expect((await call('GET', '/api/v1/parked', token)).status).to.equal(401);
      expect(await revokeOperatorToken(db, 'temp', Date.now())).to.equal(false);
      const stored = (await db('operator_tokens').select('token_hash')) as { token_hash: string }[];
      expect(stored.every((r) => /^[0-9a-f]{64}$/.test(r.token_hash) && r.token_hash !== token)).to.equal(true);
    });
  });
}
