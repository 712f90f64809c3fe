/** @file
 * The console API's OpenAPI document against the console's app, on SQLite
 * with a fake DLQ for the actions: the document is valid OpenAPI 3.1, it
 * describes every route the app's routers serve and nothing else, and every
 * operation it lists answers with the status and the shape it states (each
 * answer parsed with the schema the document was generated from), errors
 * included.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { Router } from '@koa/router';
import { expect } from 'chai';
import { z } from 'zod';
import { openApiPath } from '../../../src/api/openapi';
import { errorBody } from '../../../src/api/responses';
import { createConsoleApp } from '../../../src/console/app';
import type { ConsoleState } from '../../../src/console/context';
import { consoleOperations } from '../../../src/console/openapi';
import { createOperatorToken } from '../../../src/console/operatorTokens';
import { indexParks } from '../../../src/console/parkedIndex';
import { parkRecord } from '../../../src/console/parkRecord';
import { PARKED_TABLE } from '../../../src/db/migrations/console';
import { createLogger } from '../../../src/log';
import { loadConfig } from '../../../src/services';
import { sqliteTestDatabase, type TestDatabase } from '../../support/databases';
import { FakeDlqs } from '../../support/fakeDlqs';
import { warrenPark } from '../../support/parks';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document is plain JSON; the tests walk it by key
type Json = any;

// Nothing answers on port 9: the overview's sources (management API, the API's /metrics) fail, and say so in their parts.
const config = loadConfig({ NODE_ENV: 'test', WARREN_AMQP_MANAGEMENT_URL: 'http://guest:guest@127.0.0.1:9', WARREN_HTTP_PORT: '9' });

describe('console: GET /api/v1/openapi.json', function () {
  let database: TestDatabase;
  let server: http.Server;
  let base = '';
  let viewer = '';
  let operator = '';
  let app: ReturnType<typeof createConsoleApp>;
  let doc: Json;
  const ids: string[] = [];

  async function call(method: string, path: string, token?: string, body?: unknown) {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, json: text ? (JSON.parse(text) as Json) : undefined };
  }

  before(async function () {
    database = await sqliteTestDatabase('console', { service: 'console' })();
    const { db } = database;
    viewer = (await createOperatorToken(db, 'viewer', 'vera', Date.now())).token;
    operator = (await createOperatorToken(db, 'operator', 'otto', Date.now())).token;
    const recent = new Date(Date.now() - 3_600_000).toISOString();
    const parks = [
      warrenPark({ error: 'PermanentError: bad one', body: { text: 'documented one' }, lastFailure: recent }),
      warrenPark({ error: 'PermanentError: bad two', body: { text: 'documented two' }, lastFailure: recent }),
    ];
    const dlqs = new FakeDlqs();
    for (const p of parks) dlqs.park(p);
    await indexParks(db, parks.map(parkRecord), Date.now());
    ids.push(...((await db(PARKED_TABLE).orderBy('parked_at').pluck('id')) as string[]));
    app = createConsoleApp({ db, config, log: createLogger('test', 'silent'), amqpUrl: 'amqp://unused', dlq: { replay: dlqs.take, discard: dlqs.take } });
    const handle = app.callback();
    server = http.createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const res = await call('GET', '/api/v1/openapi.json', viewer);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    doc = res.json;
  });

  after(async function () {
    await new Promise((resolve) => server?.close(resolve));
    await database?.close();
  });

  it('is a valid OpenAPI 3.1 document, behind an operator token like the rest of /api/v1/', async function () {
    expect(doc.openapi).to.equal('3.1.0');
    const result = await new Validator().validate(doc);
    expect(result.errors ?? [], JSON.stringify(result.errors)).to.deep.equal([]);
    expect(result.valid).to.equal(true);
    const broken = structuredClone(doc);
    broken.paths['/api/v1/parked'].get.responses = 'none';
    expect((await new Validator().validate(broken)).valid).to.equal(false);
    expect((await call('GET', '/api/v1/openapi.json')).status).to.equal(401);
  });

  it('documents every JSON route the app serves, and nothing else (the pages are HTML, not in it)', function () {
    const documented = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      for (const method of Object.keys(item)) documented.add(`${method.toUpperCase()} ${path}`);
    }
    const served = new Set<string>();
    const routers = app.middleware.map((mw) => (mw as unknown as { router?: Router<ConsoleState> }).router).filter((r) => r !== undefined);
    for (const router of routers) {
      for (const layer of router.stack) {
        const path = String(layer.path);
        // The pages' router: everything outside /api/v1/ but the health checks.
        if (!path.startsWith('/api/v1') && path !== '/healthz' && path !== '/readyz') continue;
        for (const method of layer.methods) if (method !== 'HEAD') served.add(`${method} ${openApiPath(path)}`);
      }
    }
    expect(served.size).to.be.greaterThan(8);
    expect([...documented].sort()).to.deep.equal([...served].sort());
  });

  it('describes queries and bodies with the schemas that validate them', function () {
    const list = doc.paths['/api/v1/parked'].get;
    const names = list.parameters.map((p: Json) => `${p.in}:${p.name}`);
    expect(names).to.include.members(['query:q', 'query:queue', 'query:kind', 'query:reason', 'query:from', 'query:to', 'query:limit', 'query:before']);
    expect(list.parameters.find((p: Json) => p.name === 'limit').schema).to.include({ type: 'integer', minimum: 1, maximum: 100 });
    expect(list.parameters.find((p: Json) => p.name === 'kind').schema.enum).to.include('crash-loop');
    expect(list.security).to.deep.equal([{ operatorToken: [] }]);
    const discard = doc.paths['/api/v1/parked/discard'].post;
    const body = discard.requestBody.content['application/json'].schema;
    expect(body.additionalProperties).to.equal(false);
    expect(body.required).to.deep.equal(['reason']);
    expect(Object.keys(discard.responses)).to.include.members(['200', '400', '401', '403', '409', '413', '415', '503']);
    expect(doc.paths['/healthz'].get.security).to.equal(undefined);
    expect(doc.components.schemas.ParkedMessage.properties.headers.type).to.equal('object');
  });

  it('every documented operation answers with a documented status and shape', async function () {
    const bodies: Record<string, unknown> = {
      'POST /api/v1/parked/replay': { ids: [ids[0]] },
      'POST /api/v1/parked/discard': { ids: [ids[1]], reason: 'documented' },
    };
    // An action's progress is asked for by the id the replay or discard before it answered with.
    let actionId = '';
    for (const op of consoleOperations) {
      const what = `${op.method.toUpperCase()} ${openApiPath(op.path)}`;
      const id = op.path.startsWith('/api/v1/actions/') ? actionId : ids[0]!;
      const res = await call(op.method.toUpperCase(), op.path.replace(':id', id), op.auth ? operator : undefined, bodies[what]);
      if (typeof res.json?.actionId === 'string') actionId = res.json.actionId;
      expect(res.status, `${what}: ${JSON.stringify(res.json)}`).to.be.oneOf(Object.keys(op.ok).map(Number));
      expect(res.headers.get('x-request-id'), what).to.be.a('string');
      const parsed = (op.ok[res.status]!.schema as z.ZodType).safeParse(res.json);
      expect(parsed.success, `${what}: ${parsed.error?.message}`).to.equal(true);
    }
    // What the actions did is read back in the shapes documented.
    const audit = await call('GET', '/api/v1/audit', viewer);
    expect(audit.json.items.map((e: Json) => e.action).sort()).to.deep.equal(['discard', 'export', 'replay']);
  });

  it('each documented error answers in the error shape, with the status the document lists', async function () {
    const cases: [string, string, string | undefined, unknown, number][] = [
      ['GET', '/api/v1/parked?limit=0', viewer, undefined, 400],
      ['GET', '/api/v1/parked', undefined, undefined, 401],
      ['GET', '/api/v1/parked/no-such-id', viewer, undefined, 404],
      ['POST', '/api/v1/parked/replay', viewer, { ids: [ids[0]] }, 403],
      ['POST', '/api/v1/parked/discard', operator, { filter: {} }, 400],
      ['GET', '/api/v1/audit?before=nonsense', viewer, undefined, 400],
    ];
    for (const [method, path, token, body, status] of cases) {
      const res = await call(method, path, token, body);
      expect(res.status, `${method} ${path}`).to.equal(status);
      const op = Object.entries(doc.paths as Record<string, Json>).find(
        ([p, item]) => item[method.toLowerCase()] && new RegExp(`^${p.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path.split('?')[0]!),
      )?.[1][method.toLowerCase()];
      expect(op?.responses, `${method} ${path}`).to.have.property(String(status));
      expect(errorBody.safeParse(res.json).success, `${method} ${path}: ${JSON.stringify(res.json)}`).to.equal(true);
    }
    expect((await call('GET', '/api/v1/parked')).headers.get('www-authenticate')).to.be.a('string');
  });
});
