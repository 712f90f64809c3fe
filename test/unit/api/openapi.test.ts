import { Validator } from '@seriousme/openapi-schema-validator';
import type { Router } from '@koa/router';
import { expect } from 'chai';
import { z } from 'zod';
import { createApp } from '../../../src/api/app';
import type { ApiState } from '../../../src/api/context';
import { openApiPath, operations } from '../../../src/api/openapi';
import { errorBody } from '../../../src/api/responses';
import { TimelineClient } from '../../../src/api/timelineClient';
import { STREAM_POSITION_PATTERN } from '../../../src/api/validation';
import { HANDLE_PATTERN } from '../../../src/domain/text';
import { createLogger } from '../../../src/log';
import { freePort } from '../../support/harness';
import { createUser, startApi, type ApiHarness } from './harness';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document is plain JSON; the tests walk it by key
type Json = any;

/** `METHOD /path/{param}` for every route the app's router serves (HEAD is implied by GET). */
function servedRoutes(api: ApiHarness): Set<string> {
  const app = createApp(api.deps);
  const routers = app.middleware.map((mw) => (mw as unknown as { router?: Router<ApiState> }).router).filter((r): r is Router<ApiState> => r !== undefined);
  expect(routers, 'the app mounts one router').to.have.length(1);
  const out = new Set<string>();
  for (const layer of routers[0]!.stack) {
    for (const method of layer.methods) if (method !== 'HEAD') out.add(`${method} ${openApiPath(String(layer.path))}`);
  }
  return out;
}

describe('api: GET /openapi.json', () => {
  let api: ApiHarness;
  let doc: Json;
  before(async () => {
    api = await startApi();
    const res = await api.request('GET', '/openapi.json');
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    doc = res.body;
  });
  after(async () => {
    await api.close();
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    expect(doc.openapi).to.equal('3.1.0');
    const result = await new Validator().validate(doc);
    expect(result.errors ?? [], JSON.stringify(result.errors)).to.deep.equal([]);
    expect(result.valid).to.equal(true);
    // The validator does reject what is not OpenAPI.
    const broken = structuredClone(doc);
    broken.paths['/healthz'].get.responses = 'none';
    expect((await new Validator().validate(broken)).valid).to.equal(false);
  });

  it('documents every route the router serves, and nothing else', () => {
    const documented = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      for (const method of Object.keys(item)) documented.add(`${method.toUpperCase()} ${path}`);
    }
    expect([...documented].sort()).to.deep.equal([...servedRoutes(api)].sort());
  });

  it('describes request bodies and parameters with the schemas that validate them', () => {
    const createUser = doc.paths['/users'].post;
    const schema = createUser.requestBody.content['application/json'].schema;
    expect(schema.additionalProperties).to.equal(false);
    expect(schema.required).to.deep.equal(['handle', 'displayName']);
    expect(schema.properties.handle.pattern).to.equal(HANDLE_PATTERN.source);
    expect(createUser.parameters.map((p: Json) => p.name)).to.include('Idempotency-Key');
    const timeline = doc.paths['/users/{id}/timeline'].get.parameters.map((p: Json) => `${p.in}:${p.name}`);
    expect(timeline).to.deep.equal(['path:id', 'query:limit', 'query:before']);
    const stream = doc.paths['/users/{id}/notifications/stream'].get;
    expect(stream.parameters.map((p: Json) => `${p.in}:${p.name}`)).to.deep.equal(['path:id', 'query:lastEventId', 'header:Last-Event-ID']);
    expect(Object.keys(stream.responses['200'].content)).to.deep.equal(['text/event-stream']);
    // Past streams.maxPerUser or streams.maxPerProcess: the error shape, with Retry-After.
    expect(stream.responses['429'].content['application/json'].schema).to.deep.equal({ $ref: '#/components/schemas/Error' });
    expect(Object.keys(stream.responses['429'].headers)).to.include('Retry-After');
    expect(stream.parameters.find((p: Json) => p.name === 'Last-Event-ID').schema.pattern).to.equal(STREAM_POSITION_PATTERN.source);
  });

  it('declares bearer auth, the error shape and the list shape', () => {
    expect(doc.components.securitySchemes.bearerAuth).to.include({ type: 'http', scheme: 'bearer' });
    const notifications = doc.paths['/users/{id}/notifications'].get;
    expect(notifications.security).to.deep.equal([{ bearerAuth: [] }]);
    expect(doc.paths['/users/{id}'].get.security).to.equal(undefined);
    for (const status of ['400', '401', '403', '404']) {
      expect(notifications.responses[status].content['application/json'].schema).to.deep.equal({ $ref: '#/components/schemas/Error' });
    }
    expect(doc.components.schemas.Error.properties.error.required).to.deep.equal(['code', 'message']);
    const page = notifications.responses['200'].content['application/json'].schema;
    expect(page.required).to.deep.equal(['items', 'nextCursor']);
    expect(page.properties.items.items).to.deep.equal({ $ref: '#/components/schemas/Notification' });
  });

  it('every documented operation is served, and answers with the documented shapes', async () => {
    const ada = await createUser(api);
    const bob = await createUser(api);
    const tweet = await api.request('POST', '/tweets', { token: ada.token, body: { text: 'documented' } });
    expect(tweet.status).to.equal(201);
    const bodies: Record<string, unknown> = {
      'POST /users': { handle: `doc_${Date.now() % 1e6}`, displayName: 'Doc' },
      'PATCH /users/{id}': { displayName: 'Ada Documented' },
      'POST /tweets': { text: 'hello' },
    };
    // One token to revoke by its id, one to revoke all of Ada's tokens with once her first is revoked.
    const [spare, last] = [
      await api.request('POST', `/users/${ada.id}/tokens`, { token: ada.token }),
      await api.request('POST', `/users/${ada.id}/tokens`, { token: ada.token }),
    ];
    expect([spare.status, last.status]).to.deep.equal([201, 201]);
    // Revoking the token presented, then all of them, come last: everything else uses them.
    const revokes = (op: { method: string; path: string }) =>
      op.method !== 'delete' ? 0 : op.path.endsWith('/tokens/current') ? 1 : op.path.endsWith('/tokens') ? 2 : 0;
    const ordered = [...operations].sort((a, b) => revokes(a) - revokes(b));
    for (const op of ordered) {
      const template = openApiPath(op.path);
      const path = template
        .replace('{targetId}', bob.id)
        .replace('{tokenId}', spare.body.id)
        .replace('{id}', template.startsWith('/tweets/') ? tweet.body.id : ada.id);
      const what = `${op.method.toUpperCase()} ${template}`;
      if (op.ok[200]?.contentType === 'text/event-stream') {
        const controller = new AbortController();
        const res = await fetch(api.url + path, { headers: { authorization: `Bearer ${ada.token}` }, signal: controller.signal });
        expect(res.status, what).to.equal(200);
        expect(res.headers.get('content-type'), what).to.match(/^text\/event-stream/);
        controller.abort();
        continue;
      }
      if (op.ok[200]?.contentType === 'text/plain') {
        const res = await fetch(api.url + path);
        expect(res.status, what).to.equal(200);
        expect(res.headers.get('content-type'), what).to.match(/^text\/plain/);
        expect(await res.text(), what).to.match(/^# HELP warren_/m);
        continue;
      }
      const token = revokes(op) === 2 ? last.body.token : ada.token;
      const res = await api.request(op.method.toUpperCase(), path, { token: op.auth ? token : undefined, body: bodies[what] });
      expect(res.status, `${what}: ${JSON.stringify(res.body)}`).to.be.oneOf(Object.keys(op.ok).map(Number));
      const documented = op.ok[res.status]!;
      if (documented.schema) {
        const parsed = (documented.schema as z.ZodType).safeParse(res.body);
        expect(parsed.success, `${what}: ${parsed.error?.message}`).to.equal(true);
      } else {
        expect(res.body, what).to.equal(undefined);
      }
    }
  });

  it('uses each operation’s own error text only for a status it documents', () => {
    const explained = operations.filter((op) => op.errorText);
    expect(explained.map((op) => `${op.method} ${op.path}`)).to.include('get /users/:id/timeline');
    for (const op of explained) {
      const responses = doc.paths[openApiPath(op.path)][op.method].responses;
      for (const [status, text] of Object.entries(op.errorText!)) expect(responses[status]?.description, `${op.method} ${op.path} ${status}`).to.equal(text);
    }
  });

  it('documents every answer GET /users/{id}/timeline gives, 503 with Retry-After when no timeline instance answers', async () => {
    const op = doc.paths['/users/{id}/timeline'].get;
    expect(Object.keys(op.responses).sort()).to.deep.equal(['200', '400', '404', '503']);
    const ada = await createUser(api);
    // The real client, asking an instance that is not there: what `warren api` answers when no timeline service does.
    const unanswered = new TimelineClient({ urls: [`http://127.0.0.1:${await freePort()}`], deadlineMs: 300, log: createLogger('openapi-test', 'silent') });
    const reference = api.timeline;
    const answers: Record<string, Awaited<ReturnType<ApiHarness['request']>>> = {};
    try {
      answers['200'] = await api.request('GET', `/users/${ada.id}/timeline`);
      answers['400'] = await api.request('GET', `/users/${ada.id}/timeline?limit=0`);
      answers['404'] = await api.request('GET', '/users/0190a5c8-7a4e-7c3b-8f00-000000000000/timeline');
      api.timeline = unanswered;
      answers['503'] = await api.request('GET', `/users/${ada.id}/timeline`);
    } finally {
      api.timeline = reference;
      await unanswered.close();
    }
    for (const [status, res] of Object.entries(answers)) {
      expect(res.status, JSON.stringify(res.body)).to.equal(Number(status));
      const documented = op.responses[status];
      for (const [name, header] of Object.entries(documented.headers as Record<string, Json>)) {
        if (header.required) expect(res.headers.get(name), `${status}: ${name}`).to.be.a('string');
      }
      if (status !== '200') {
        expect(documented.content['application/json'].schema).to.deep.equal({ $ref: '#/components/schemas/Error' });
        expect(errorBody.safeParse(res.body).success, `${status}: ${JSON.stringify(res.body)}`).to.equal(true);
      }
    }
    const unavailable = answers['503']!;
    expect(unavailable.body.error.code).to.equal('timeline_unavailable');
    expect(op.responses['503'].description).to.include(`\`${unavailable.body.error.code}\``);
    expect(unavailable.headers.get('retry-after')).to.match(/^\d+$/);
    expect(op.responses['503'].headers['Retry-After']).to.deep.include({ required: true, schema: { type: 'integer', minimum: 0 } });
  });

  it('error answers have the documented error shape', async () => {
    for (const [method, path] of [
      ['GET', '/users/not-a-uuid'],
      ['POST', '/tweets'],
      ['GET', '/analytics/hashtags?limit=0'],
      ['GET', '/nowhere'],
    ] as const) {
      const res = await api.request(method, path);
      expect(res.status).to.be.within(400, 499);
      expect(errorBody.safeParse(res.body).success, `${method} ${path}: ${JSON.stringify(res.body)}`).to.equal(true);
    }
  });
});
