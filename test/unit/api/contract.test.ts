import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { freePort } from '../../support/harness';
import { createUser, freshHandle, startApi, type ApiHarness } from './harness';

/**
 * The API against its own OpenAPI document, checked the way a validating
 * proxy in front of it would: every request and every response goes
 * through Prism (`prism proxy`, @stoplight/prism-cli), which validates both
 * against the document and reports what does not match in `sl-violations`.
 *
 * The requests are made from the document itself, operation by operation,
 * so an operation added to it is driven too: a good request (that must
 * pass untouched), and bad ones made from each constraint the document
 * states (a path id that is no UUID, a missing token, a query value out of
 * range, a body property too long or of the wrong shape, a stray body on a
 * route that takes none...). A request the document calls valid must get
 * a documented answer without any violation; one it calls invalid must be
 * refused by the API too, with a documented status, headers and body.
 */

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document is plain JSON; the test walks it by key
type Json = any;

interface Violation {
  location: string[];
  message: string;
}

/** What the document says of a request: valid (no violation at all), invalid (a request violation expected), or either. */
type Verdict = 'valid' | 'invalid' | 'either';

interface Call {
  label: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  verdict: Verdict;
  /** Must be answered 2xx. */
  succeeds?: boolean;
  /**
   * Sent to the API itself, not through the proxy: Prism refuses a body on
   * an operation that takes none before the API sees it (400, or its own
   * JSON parse error), and the point is what the API does without a proxy.
   * Judged by its status: documented for the operation, and a success.
   */
  direct?: boolean;
}

interface Fixtures {
  ada: { id: string; token: string };
  bob: { id: string; token: string };
  tweetId: string;
}

function startPrism(docFile: string, upstream: string, port: number): Promise<ChildProcess> {
  const pkg = require.resolve('@stoplight/prism-cli/package.json');
  const bin = path.join(path.dirname(pkg), (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { bin: { prism: string } }).bin.prism);
  const child = spawn(process.execPath, [bin, 'proxy', docFile, upstream, '--host', '127.0.0.1', '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`prism did not start in time:\n${out}`)), 60_000);
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('Prism is listening')) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`prism exited (${code}):\n${out}`));
    });
  });
}

/** A value for each body property the document names, as a client would send it. */
const EXAMPLES: Record<string, () => unknown> = {
  handle: () => freshHandle('contract'),
  displayName: () => 'Contract Tester',
  bio: () => 'checks what the document says',
  text: () => 'a tweet that follows the contract #openapi',
};

/** A string that breaks `pattern`, if one of a few does. */
function notMatching(pattern: string): string | undefined {
  const re = new RegExp(pattern, 'u');
  return ['', '   ', '!!', 'a b', '-'].find((s) => !re.test(s));
}

/** Values of a query parameter, header or body property that its schema refuses. */
function badValues(schema: Json): { label: string; value: unknown }[] {
  const out: { label: string; value: unknown }[] = [];
  if (schema.type === 'integer') {
    if (schema.minimum !== undefined) out.push({ label: `below minimum ${schema.minimum}`, value: schema.minimum - 1 });
    if (schema.maximum !== undefined) out.push({ label: `above maximum ${schema.maximum}`, value: schema.maximum + 1 });
    out.push({ label: 'not an integer', value: 'abc' });
  }
  if (schema.type === 'string') {
    if (schema.minLength > 0) out.push({ label: `shorter than minLength ${schema.minLength}`, value: 'a'.repeat(schema.minLength - 1) });
    if (schema.maxLength !== undefined) out.push({ label: `longer than maxLength ${schema.maxLength}`, value: 'a'.repeat(schema.maxLength + 1) });
    if (schema.format === 'uuid') out.push({ label: 'not a uuid', value: 'not-a-uuid' });
    if (schema.pattern !== undefined) {
      const bad = notMatching(schema.pattern);
      if (bad !== undefined) out.push({ label: `not matching ${schema.pattern}`, value: bad });
    }
  }
  return out;
}

describe('api contract: every documented operation through a validating proxy (Prism)', function () {
  this.timeout(180_000);
  let api: ApiHarness;
  let prism: ChildProcess | undefined;
  let proxyUrl: string;
  let doc: Json;
  let dir: string;

  before(async function () {
    api = await startApi();
    doc = (await api.request('GET', '/openapi.json')).body;
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-contract-'));
    const docFile = path.join(dir, 'openapi.json');
    fs.writeFileSync(docFile, JSON.stringify(doc));
    const port = await freePort();
    prism = await startPrism(docFile, api.url, port);
    proxyUrl = `http://127.0.0.1:${port}`;
  });

  after(async function () {
    prism?.kill('SIGTERM');
    await api?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A component `$ref` resolved (the document refers only inside itself). */
  const resolve = (schema: Json): Json => (schema?.$ref ? doc.components.schemas[schema.$ref.split('/').pop()] : schema);

  async function fixtures(): Promise<Fixtures> {
    const ada = await createUser(api);
    const bob = await createUser(api);
    const tweet = await api.request('POST', '/tweets', { token: ada.token, body: { text: 'the fixture tweet' } });
    expect(tweet.status, JSON.stringify(tweet.body)).to.equal(201);
    return { ada, bob, tweetId: tweet.body.id };
  }

  /** The id a path parameter names: the fixtures' where the document's path says which, else an unknown one (a 404). */
  async function paramValue(template: string, name: string, fx: Fixtures): Promise<string> {
    if (name === 'id') return template.startsWith('/tweets/') ? fx.tweetId : fx.ada.id;
    if (name === 'targetId') return fx.bob.id;
    if (name === 'tokenId') {
      const listed = await api.request('GET', `/users/${fx.ada.id}/tokens`, { token: fx.ada.token });
      const items: Json[] = Array.isArray(listed.body) ? listed.body : (listed.body?.items ?? listed.body?.tokens ?? []);
      if (listed.status === 200 && items[0]?.id) return items[0].id;
    }
    return crypto.randomUUID();
  }

  function goodBody(schema: Json): Record<string, unknown> {
    const s = resolve(schema);
    const body: Record<string, unknown> = {};
    for (const name of Object.keys(s.properties ?? {})) if (EXAMPLES[name]) body[name] = EXAMPLES[name]!();
    for (const name of s.required ?? []) expect(EXAMPLES, `no example value for body property ${name}: add one to EXAMPLES`).to.have.property(name);
    return body;
  }

  async function callsFor(template: string, method: string, op: Json, fx: Fixtures): Promise<{ good: Call; calls: Call[] }> {
    const what = `${method.toUpperCase()} ${template}`;
    const params: Json[] = op.parameters ?? [];
    const values: Record<string, string> = {};
    for (const p of params.filter((p) => p.in === 'path')) values[p.name] = await paramValue(template, p.name, fx);
    const pathWith = (over: Record<string, string> = {}) =>
      template.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(over[name] ?? values[name]!));
    const auth: Record<string, string> = op.security ? { authorization: `Bearer ${fx.ada.token}` } : {};
    const bodySchema = op.requestBody?.content?.['application/json']?.schema;
    // A base for the bad bodies; each good one is made anew (a handle can be taken only once).
    const body = bodySchema ? goodBody(bodySchema) : undefined;
    const json = (b: unknown) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
    const good = (label: string, extra: Partial<Call> = {}): Call => ({
      label,
      method,
      path: pathWith(),
      verdict: 'valid',
      ...(bodySchema ? json(goodBody(bodySchema)) : {}),
      ...extra,
      headers: { ...auth, ...(body ? { 'content-type': 'application/json' } : {}), ...extra.headers },
    });
    const calls: Call[] = [];

    for (const p of params.filter((p) => p.in === 'path')) {
      for (const bad of badValues(p.schema))
        calls.push(good(`path ${p.name} ${bad.label}`, { path: pathWith({ [p.name]: String(bad.value) }), verdict: 'invalid' }));
    }
    if (op.security) {
      calls.push({ ...good('without a token'), headers: body ? { 'content-type': 'application/json' } : {}, verdict: 'invalid' });
      if (template.startsWith('/users/{id}')) calls.push(good("with another user's token", { headers: { authorization: `Bearer ${fx.bob.token}` } }));
    }
    for (const p of params.filter((p) => p.in === 'query')) {
      // An empty query value is taken for none by Prism too (as for headers below): the API's 400 must still be documented.
      for (const bad of badValues(p.schema))
        calls.push(
          good(`query ${p.name} ${bad.label}`, {
            path: `${pathWith()}?${p.name}=${encodeURIComponent(String(bad.value))}`,
            verdict: bad.value === '' ? 'either' : 'invalid',
          }),
        );
      if (p.schema.type === 'integer') calls.push(good(`query ${p.name} at its maximum`, { path: `${pathWith()}?${p.name}=${p.schema.maximum ?? 1}` }));
    }
    // OpenAPI cannot forbid other query parameters: whatever the API answers must be documented.
    calls.push(good('with an unknown query parameter', { path: `${pathWith()}?bogus=1` }));
    for (const p of params.filter((p) => p.in === 'header')) {
      // An empty header may be taken for none (Prism does): the API's 400 must still be documented.
      for (const bad of badValues(p.schema))
        calls.push(good(`header ${p.name} ${bad.label}`, { headers: { [p.name]: String(bad.value) }, verdict: bad.value === '' ? 'either' : 'invalid' }));
    }
    if (bodySchema) {
      const s = resolve(bodySchema);
      calls.push(good('without a body', { body: undefined, verdict: 'invalid' }));
      calls.push(good('with a text/plain body', { headers: { 'content-type': 'text/plain' }, body: 'hello', verdict: 'invalid' }));
      calls.push(good('with a body that is not JSON', { body: '{"unfinished', verdict: 'either' }));
      if (s.additionalProperties === false) calls.push(good('with an unknown body property', { ...json({ ...body, bogus: 1 }), verdict: 'invalid' }));
      for (const name of s.required ?? []) {
        const { [name]: _, ...rest } = body!;
        calls.push(good(`without body property ${name}`, { ...json(rest), verdict: 'invalid' }));
      }
      for (const [name, prop] of Object.entries(s.properties ?? {}) as [string, Json][]) {
        if (!(name in body!)) continue;
        calls.push(good(`body property ${name} of the wrong type`, { ...json({ ...body, [name]: 42 }), verdict: 'invalid' }));
        for (const bad of badValues(prop))
          calls.push(good(`body property ${name} ${bad.label}`, { ...json({ ...body, [name]: bad.value }), verdict: 'invalid' }));
      }
    } else {
      // A route that takes no body ignores one, whatever it is, rather than answer a 400 or 415 it does not document.
      calls.push(good('with a stray text/plain body', { headers: { 'content-type': 'text/plain' }, body: 'stray', succeeds: true, direct: true }));
      calls.push(
        good('with a stray body that is not JSON', { headers: { 'content-type': 'application/json' }, body: '{"unfinished', succeeds: true, direct: true }),
      );
    }
    for (const extra of EXTRA[what] ?? []) calls.push(good(extra.label, extra.make(body, pathWith())));
    for (const known of ENFORCED[what] ?? []) calls.push(good(`enforced: ${known.label}`, { ...known.make(body, pathWith()), verdict: 'invalid' }));
    const idempotent = params.some((p) => p.name === 'Idempotency-Key');
    return { good: good('a good request', { succeeds: true, ...(idempotent ? { headers: { 'Idempotency-Key': crypto.randomUUID() } } : {}) }), calls };
  }

  type Make = (body: Json, path: string) => Partial<Call>;
  const withBody =
    (over: Record<string, unknown>): Make =>
    (b) => ({ body: JSON.stringify({ ...b, ...over }) });
  const withQuery =
    (query: string): Make =>
    (_, p) => ({ path: `${p}?${query}` });
  const withHeader =
    (name: string, value: string): Make =>
    () => ({ headers: { [name]: value } });
  const LIMITS = [withQuery('limit=0'), withQuery('limit=101'), withQuery('limit=abc'), withQuery('limit=2.5')];
  const limitCases = ['0', '101', 'abc', '2.5'].map((v, i) => ({ label: `limit=${v}`, make: LIMITS[i]! }));

  /**
   * What the API's validation refuses (src/api/validation.ts, the
   * Idempotency-Key and stream middleware), each of which the document must
   * refuse too, so that it says what is enforced. Cases of operations the
   * document does not list are not run.
   */
  const ENFORCED: Record<string, { label: string; make: Make }[]> = {
    'POST /users': [
      { label: 'a 2-character handle', make: withBody({ handle: 'ab' }) },
      { label: 'a 31-character handle', make: withBody({ handle: 'a'.repeat(31) }) },
      { label: 'an empty displayName', make: withBody({ displayName: '' }) },
      { label: 'a blank displayName', make: withBody({ displayName: '   ' }) },
      { label: 'a 101-character displayName', make: withBody({ displayName: 'n'.repeat(101) }) },
      { label: 'a 501-character bio', make: withBody({ bio: 'b'.repeat(501) }) },
      { label: 'a 65-character Idempotency-Key', make: withHeader('Idempotency-Key', 'k'.repeat(65)) },
    ],
    'PATCH /users/{id}': [
      { label: 'a 101-character displayName', make: withBody({ displayName: 'n'.repeat(101) }) },
      { label: 'a 501-character bio', make: withBody({ bio: 'b'.repeat(501) }) },
      { label: 'a handle with a dash', make: withBody({ handle: 'no-dash' }) },
    ],
    'POST /tweets': [
      { label: 'empty text', make: withBody({ text: '' }) },
      { label: 'text of only whitespace', make: withBody({ text: ' \n\t ' }) },
      { label: 'text over 8,192 bytes', make: withBody({ text: 'a'.repeat(8193) }) },
      { label: 'a 65-character Idempotency-Key', make: withHeader('Idempotency-Key', 'k'.repeat(65)) },
    ],
    'GET /users/{id}/timeline': limitCases,
    'GET /users/{id}/notifications': limitCases,
    'GET /analytics/hashtags': limitCases,
    'GET /users/{id}/notifications/stream': [
      { label: 'a lastEventId that is no notification id', make: withQuery('lastEventId=nope') },
      { label: 'a Last-Event-ID that is no notification id', make: withHeader('Last-Event-ID', 'nope') },
    ],
  };

  /** Requests the document calls valid but the API refuses, for what JSON Schema cannot say: the answer must still be documented. */
  const EXTRA: Record<string, { label: string; make: Make }[]> = {
    'POST /tweets': [
      { label: 'with 281 characters (flags, two code points each)', make: withBody({ text: '🇫🇷'.repeat(281) }) },
      { label: 'with decomposed text (NFC composes it)', make: (b) => ({ body: JSON.stringify({ ...b, text: 'cafe\u0301' }), succeeds: true }) },
    ],
  };

  /**
   * An event stream stays open, and the proxy judges a response once it has
   * ended: the call gets a token of its own, revoked half a second later,
   * which ends the stream at its next heartbeat.
   */
  async function ending(call: Call, fx: Fixtures): Promise<Call> {
    if (call.headers?.authorization !== `Bearer ${fx.ada.token}`) return call;
    const issued = await api.request('POST', `/users/${fx.ada.id}/tokens`, { token: fx.ada.token });
    expect(issued.status, JSON.stringify(issued.body)).to.equal(201);
    const token: string = issued.body.token;
    setTimeout(() => void api.request('DELETE', `/users/${fx.ada.id}/tokens/current`, { token }), 500);
    return { ...call, headers: { ...call.headers, authorization: `Bearer ${token}` } };
  }

  /** Through the proxy with node:http, which (unlike fetch) sends a body on GET too, as some clients do. */
  function send(call: Call): Promise<{ status: number; headers: http.IncomingHttpHeaders; violations: Violation[]; text: string }> {
    return new Promise((resolve, reject) => {
      const headers = { ...call.headers, ...(call.body !== undefined ? { 'content-length': String(Buffer.byteLength(call.body)) } : {}) };
      const req = http.request((call.direct ? api.url : proxyUrl) + call.path, { method: call.method.toUpperCase(), headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          const raw = res.headers['sl-violations'];
          resolve({ status: res.statusCode!, headers: res.headers, violations: typeof raw === 'string' ? (JSON.parse(raw) as Violation[]) : [], text });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(20_000, () => req.destroy(new Error(`no answer in 20 s to ${call.label}: ${call.method} ${call.path}`)));
      req.end(call.body);
    });
  }

  function judge(what: string, call: Call, r: { status: number; violations: Violation[]; text: string }, op: Json): string[] {
    const request = r.violations.filter((v) => v.location[0] === 'request');
    const response = r.violations.filter((v) => v.location[0] !== 'request');
    const said = (vs: Violation[]) => vs.map((v) => `${v.location.join('.')}: ${v.message}`).join('; ');
    const problems: string[] = [];
    const where = `${what} ${call.label} (${call.method.toUpperCase()} ${call.path.slice(0, 120)} -> ${r.status})`;
    if (call.direct && !(String(r.status) in op.responses)) problems.push(`${where}: the status is not documented: ${r.text.slice(0, 200)}`);
    if (response.length > 0) problems.push(`${where}: the response breaks the document: ${said(response)} ${r.text.slice(0, 200)}`);
    if (call.verdict === 'valid' && request.length > 0) problems.push(`${where}: a request the test thinks valid breaks the document: ${said(request)}`);
    if (call.verdict === 'invalid' && request.length === 0) problems.push(`${where}: the document does not say this request is invalid`);
    if (call.verdict === 'invalid' && (r.status < 400 || r.status >= 500)) problems.push(`${where}: the document calls it invalid, the API accepted it`);
    if (call.succeeds && (r.status < 200 || r.status >= 300)) problems.push(`${where}: should have succeeded: ${r.text.slice(0, 200)}`);
    return problems;
  }

  it('answers every documented operation as documented, good requests and bad, with no violation either way', async function () {
    const problems: string[] = [];
    const succeeded = new Set<string>();
    const operations = Object.entries(doc.paths as Record<string, Record<string, Json>>).flatMap(([template, item]) =>
      Object.entries(item).map(([method, op]) => ({ template, method, op })),
    );
    expect(operations.length).to.be.greaterThan(15);
    for (const { template, method, op } of operations) {
      const what = `${method.toUpperCase()} ${template}`;
      const streams = Object.keys(op.responses['200']?.content ?? {}).includes('text/event-stream');
      // Each call on fixtures of its own: one may revoke the token, take the handle or follow, and the next must not care.
      const fresh = async () => {
        const fx = await fixtures();
        return { fx, ...(await callsFor(template, method, op, fx)) };
      };
      const count = (await fresh()).calls.length;
      for (let i = 0; i < count; i++) {
        const { fx, calls } = await fresh();
        problems.push(...judge(what, calls[i]!, await send(streams ? await ending(calls[i]!, fx) : calls[i]!), op));
      }

      // The outbox over its bound: writes that emit answer 503 with Retry-After; the rest as usual. Either way, as documented.
      const before = await fresh();
      api.backlog = api.config.outbox.maxBacklog + 1;
      const overBound = { ...before.good, label: 'while the outbox is over its bound', succeeds: false };
      problems.push(...judge(what, overBound, await send(streams ? await ending(overBound, before.fx) : overBound), op));
      api.backlog = 0;

      const { fx, good: goodCall } = await fresh();
      const res = await send(streams ? await ending(goodCall, fx) : goodCall);
      problems.push(...judge(what, goodCall, res, op));
      if (res.status >= 200 && res.status < 300) succeeded.add(what);
      if (goodCall.headers!['Idempotency-Key'] && res.status < 300) {
        const again = await send(goodCall);
        problems.push(...judge(what, { ...goodCall, label: 'repeated with its Idempotency-Key' }, again, op));
        if (again.headers['idempotent-replayed'] !== 'true') problems.push(`${what}: a repeat with the same Idempotency-Key is not marked Idempotent-Replayed`);
        const other = {
          ...goodCall,
          label: 'the same Idempotency-Key with another body',
          body: JSON.stringify({ ...JSON.parse(goodCall.body!), ...goodBody(op.requestBody.content['application/json'].schema) }),
          succeeds: false,
        };
        problems.push(...judge(what, other, await send(other), op));
      }
    }
    expect(problems, problems.join('\n')).to.deep.equal([]);
    // Each operation worked at least once as documented (an operation on an id the test cannot make would show here).
    expect([...succeeded].sort()).to.deep.equal(operations.map(({ template, method }) => `${method.toUpperCase()} ${template}`).sort());
  });

  it('declares the headers the API sets: Retry-After on 503 and 429, WWW-Authenticate on 401, Idempotent-Replayed, x-request-id; and a server', function () {
    const missing: string[] = [];
    expect(doc.servers, 'servers').to.be.an('array').that.is.not.empty;
    for (const [template, item] of Object.entries(doc.paths as Record<string, Record<string, Json>>)) {
      for (const [method, op] of Object.entries(item)) {
        const what = `${method.toUpperCase()} ${template}`;
        const idempotent = (op.parameters ?? []).some((p: Json) => p.name === 'Idempotency-Key');
        for (const [status, res] of Object.entries(op.responses as Record<string, Json>)) {
          const headers = Object.keys(res.headers ?? {});
          const need = ['x-request-id'];
          if (status === '401') need.push('WWW-Authenticate');
          // /readyz's 503 is its answer, not a refusal to retry.
          if ((status === '503' && res.content?.['application/json']?.schema?.$ref === '#/components/schemas/Error') || status === '429')
            need.push('Retry-After');
          if (idempotent && status.startsWith('2')) need.push('Idempotent-Replayed');
          for (const h of need) if (!headers.includes(h)) missing.push(`${what} ${status}: ${h}`);
        }
      }
    }
    expect(missing).to.deep.equal([]);
  });

  it('the proxy does report what breaks the document (the check can fail)', async function () {
    const r = await send({ label: 'limit 0', method: 'get', path: '/analytics/hashtags?limit=0', verdict: 'invalid' });
    expect(r.violations.map((v) => v.location.join('.'))).to.include('request.query.limit');
    // A document that lists no 400 there makes the API's answer a violation.
    const broken = structuredClone(doc);
    delete broken.paths['/analytics/hashtags'].get.responses['400'];
    const docFile = path.join(dir, 'broken.json');
    fs.writeFileSync(docFile, JSON.stringify(broken));
    const port = await freePort();
    const other = await startPrism(docFile, api.url, port);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/analytics/hashtags?limit=0`);
      const violations = JSON.parse(res.headers.get('sl-violations') ?? '[]') as Violation[];
      expect(violations.map((v) => v.location.join('.'))).to.include('response');
    } finally {
      other.kill('SIGTERM');
    }
  });
});
