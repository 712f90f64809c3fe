import type { Knex } from 'knex';
import { expect } from 'chai';
import { MAX_REQUEST_ID_LENGTH } from '../../src/domain/ids';
import { insertExpiredToken, openApiDatabase, outboxRows, rawHttp, rawSocket, type RawResponse } from '../support/hostile';
import { TestSystem, TEST_DB, type WarrenProcess } from '../support/system';

/**
 * What an attacker or a buggy client throws at the real API process: each
 * request gets the right 4xx with `{ error: { code, message, details? } }`
 * naming the field, nothing reaches the outbox, and the process lives on.
 */
interface Users {
  ada: { id: string; token: string };
  bob: { id: string; token: string };
  expired: string;
}
type Dyn<T> = T | ((u: Users) => T);

interface Case {
  name: string;
  method?: string;
  path: Dyn<string>;
  /** Bearer token, or a whole Authorization header with `authorization`. */
  token?: Dyn<string>;
  authorization?: string;
  json?: unknown;
  raw?: Buffer | string;
  /** Extra headers; a body gets `content-type: application/json` unless this names another (or null for none). */
  headers?: Record<string, string | null>;
  chunked?: boolean;
  expect: [status: number, code: string, field?: string];
}

// Large enough for 10^5 levels of `[` to reach the JSON parser rather than the body limit.
const BODY_LIMIT = 256 * 1024;
const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const bytes = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
const user = (handle: string, displayName: unknown = 'x') => ({ handle, displayName });
const FAMILY = '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}'; // one grapheme, 25 UTF-8 bytes
const ZALGO = 'a' + '\u0301\u0302\u0303\u0304'.repeat(5); // one grapheme, 41 UTF-8 bytes
const forged = 'wrn_' + 'A'.repeat(43);
const tweets = '/tweets';
const self = (u: Users) => `/users/${u.ada.id}`;
const timeline = (q: string) => (u: Users) => `/users/${u.ada.id}/timeline?${q}`;
const ada = (u: Users) => u.ada.token;

const tables: Record<string, Case[]> = {
  'malformed bodies': [
    { name: 'truncated JSON', path: '/users', raw: '{"handle":"abc_1","displayName":', expect: [400, 'validation_failed', 'body'] },
    { name: 'form-encoded text sent as JSON', path: '/users', raw: 'handle=abc&displayName=x', expect: [400, 'validation_failed', 'body'] },
    { name: 'JSON null', path: '/users', raw: 'null', expect: [400, 'validation_failed', 'body'] },
    { name: 'a JSON array', path: '/users', raw: '[]', expect: [400, 'validation_failed', 'body'] },
    { name: 'handle of the wrong type', path: '/users', json: { handle: 123, displayName: 'x' }, expect: [400, 'validation_failed', 'handle'] },
    { name: 'null displayName', path: '/users', json: user('null_name', null), expect: [400, 'validation_failed', 'displayName'] },
    { name: 'object displayName', path: '/users', json: user('obj_name', { first: 'a' }), expect: [400, 'validation_failed', 'displayName'] },
    { name: 'an unknown field', path: '/users', json: { ...user('unknown_f'), isAdmin: true }, expect: [400, 'validation_failed', 'isAdmin'] },
    {
      name: 'a __proto__ field',
      path: '/users',
      raw: '{"handle":"proto_1","displayName":"x","__proto__":{"isAdmin":true}}',
      expect: [400, 'validation_failed', '__proto__'],
    },
    { name: '10^5 levels of [ (unclosed)', path: '/users', raw: '['.repeat(100_000), expect: [400, 'validation_failed', 'body'] },
    { name: '10^5 levels of [ ] as a body', path: '/users', raw: deep(100_000), expect: [400, 'validation_failed', 'body'] },
    { name: '10^5 levels of [ ] as tweet text', path: tweets, token: ada, raw: `{"text":${deep(100_000)}}`, expect: [400, 'validation_failed', 'text'] },
    { name: 'tweet text a number', path: tweets, token: ada, json: { text: 42 }, expect: [400, 'validation_failed', 'text'] },
    { name: 'tweet without text', path: tweets, token: ada, json: {}, expect: [400, 'validation_failed', 'text'] },
    { name: 'blank tweet', path: tweets, token: ada, json: { text: ' \n\t ' }, expect: [400, 'validation_failed', 'text'] },
    { name: 'empty PATCH', method: 'PATCH', path: self, token: ada, json: {}, expect: [400, 'validation_failed', 'body'] },
    { name: 'PATCH bio of the wrong type', method: 'PATCH', path: self, token: ada, json: { bio: 5 }, expect: [400, 'validation_failed', 'bio'] },
    { name: 'PATCH handle with a space', method: 'PATCH', path: self, token: ada, json: { handle: 'a b c' }, expect: [400, 'validation_failed', 'handle'] },
  ],
  sizes: [
    { name: 'body over the limit with Content-Length', path: '/users', json: user('big_body', 'x'.repeat(BODY_LIMIT)), expect: [413, 'payload_too_large'] },
    {
      name: 'body over the limit, chunked',
      path: '/users',
      json: user('big_chunk', 'x'.repeat(BODY_LIMIT)),
      chunked: true,
      expect: [413, 'payload_too_large'],
    },
    {
      name: 'a 10^6-character tweet, chunked',
      path: tweets,
      token: ada,
      json: { text: 'x'.repeat(1_000_000) },
      chunked: true,
      expect: [413, 'payload_too_large'],
    },
    { name: 'a 10^6-character header', method: 'GET', path: '/healthz', headers: { 'x-junk': 'x'.repeat(1_000_000) }, expect: [431, 'headers_too_large'] },
    { name: 'a 10^5-character path', method: 'GET', path: '/users/' + 'a'.repeat(100_000), expect: [431, 'headers_too_large'] },
    { name: 'a 10 KB bearer token', path: tweets, authorization: `Bearer wrn_${'A'.repeat(10_240)}`, json: { text: 'hi' }, expect: [401, 'unauthorized'] },
    {
      name: 'Idempotency-Key of 65 characters',
      path: '/users',
      headers: { 'idempotency-key': 'k'.repeat(65) },
      json: user('idem_long'),
      expect: [400, 'validation_failed', 'Idempotency-Key'],
    },
    { name: '281 emoji', path: tweets, token: ada, json: { text: '\u{1F44D}'.repeat(281) }, expect: [400, 'validation_failed', 'text'] },
    { name: '281 family emoji', path: tweets, token: ada, json: { text: FAMILY.repeat(281) }, expect: [400, 'validation_failed', 'text'] },
    {
      name: '281 letters with combining marks',
      path: tweets,
      token: ada,
      json: { text: 'a\u0301\u0302'.repeat(281) },
      expect: [400, 'validation_failed', 'text'],
    },
    { name: '280 stacked clusters over 8,192 bytes', path: tweets, token: ada, json: { text: ZALGO.repeat(280) }, expect: [400, 'validation_failed', 'text'] },
  ],
  encodings: [
    {
      name: 'invalid UTF-8 in a displayName',
      path: '/users',
      raw: bytes('{"handle":"bad_utf8","displayName":"a', [0xff, 0xfe], '"}'),
      expect: [400, 'validation_failed', 'body'],
    },
    {
      name: 'overlong UTF-8 NUL in tweet text',
      path: tweets,
      token: ada,
      raw: bytes('{"text":"a', [0xc0, 0x80], '"}'),
      expect: [400, 'validation_failed', 'body'],
    },
    { name: 'a truncated UTF-8 sequence', path: tweets, token: ada, raw: bytes('{"text":"a', [0xe2, 0x82], '"}'), expect: [400, 'validation_failed', 'body'] },
    { name: 'a raw NUL byte in a JSON string', path: tweets, token: ada, raw: bytes('{"text":"a', [0x00], 'b"}'), expect: [400, 'validation_failed', 'body'] },
    { name: 'an escaped NUL in tweet text', path: tweets, token: ada, json: { text: 'a\u0000b' }, expect: [400, 'validation_failed', 'text'] },
    { name: 'an escaped NUL in a displayName', path: '/users', json: user('nul_name', 'a\u0000b'), expect: [400, 'validation_failed', 'displayName'] },
    { name: 'an escaped NUL in a bio', method: 'PATCH', path: self, token: ada, json: { bio: '\u0000' }, expect: [400, 'validation_failed', 'bio'] },
    { name: 'a lone surrogate in tweet text', path: tweets, token: ada, raw: '{"text":"a\\ud800b"}', expect: [400, 'validation_failed', 'text'] },
  ],
  'ids and paging': [
    { name: 'path traversal in a user id', method: 'GET', path: '/users/..%2F..%2Fetc', expect: [404, 'not_found'] },
    { name: 'dot segments in the path', method: 'GET', path: '/users/../../etc/passwd', expect: [404, 'not_found'] },
    { name: 'SQL in a tweet id', method: 'GET', path: '/tweets/1%20OR%201=1', expect: [404, 'not_found'] },
    { name: 'quoted SQL in a user id', method: 'GET', path: `/users/${encodeURIComponent("' OR '1'='1")}`, expect: [404, 'not_found'] },
    { name: 'a NUL in a user id', method: 'GET', path: '/users/%00', expect: [404, 'not_found'] },
    { name: 'broken percent-encoding in an id', method: 'GET', path: '/users/%E0%A4%A', expect: [404, 'not_found'] },
    { name: 'traversal in a PATCH target', method: 'PATCH', path: '/users/..%2F..%2Fetc', token: ada, json: { bio: 'x' }, expect: [404, 'not_found'] },
    { name: 'non-numeric limit', method: 'GET', path: timeline('limit=abc'), expect: [400, 'validation_failed', 'limit'] },
    { name: 'negative limit', method: 'GET', path: timeline('limit=-1'), expect: [400, 'validation_failed', 'limit'] },
    { name: 'zero limit', method: 'GET', path: timeline('limit=0'), expect: [400, 'validation_failed', 'limit'] },
    { name: 'limit 101', method: 'GET', path: timeline('limit=101'), expect: [400, 'validation_failed', 'limit'] },
    { name: 'huge limit', method: 'GET', path: timeline('limit=99999999999999999999'), expect: [400, 'validation_failed', 'limit'] },
    { name: 'limit in exponent form', method: 'GET', path: timeline('limit=1e2'), expect: [400, 'validation_failed', 'limit'] },
    { name: 'empty limit', method: 'GET', path: timeline('limit='), expect: [400, 'validation_failed', 'limit'] },
    { name: 'repeated limit', method: 'GET', path: timeline('limit=1&limit=2'), expect: [400, 'validation_failed', 'limit'] },
    { name: 'a junk cursor', method: 'GET', path: timeline('before=garbage'), expect: [400, 'validation_failed', 'before'] },
    {
      name: 'a cursor of a non-id',
      method: 'GET',
      path: timeline(`before=${Buffer.from("1' OR 1=1").toString('base64url')}`),
      expect: [400, 'validation_failed', 'before'],
    },
    { name: 'repeated cursors', method: 'GET', path: timeline('before=a&before=b'), expect: [400, 'validation_failed', 'before'] },
    { name: 'an unknown query parameter', method: 'GET', path: timeline('offset=10'), expect: [400, 'validation_failed', 'offset'] },
    {
      name: 'a bad limit on notifications',
      method: 'GET',
      path: (u) => `/users/${u.ada.id}/notifications?limit=-5`,
      token: ada,
      expect: [400, 'validation_failed', 'limit'],
    },
    { name: 'a cursor on the hashtag top list', method: 'GET', path: '/analytics/hashtags?before=x', expect: [400, 'validation_failed', 'before'] },
  ],
  'tokens and other users': [
    { name: 'no Authorization', path: tweets, json: { text: 'hi' }, expect: [401, 'unauthorized'] },
    { name: 'an empty bearer token', path: tweets, authorization: 'Bearer ', json: { text: 'hi' }, expect: [401, 'unauthorized'] },
    { name: 'right prefix, wrong secret', path: tweets, token: forged, json: { text: 'hi' }, expect: [401, 'unauthorized'] },
    { name: 'wrong prefix', path: tweets, token: (u) => 'xyz_' + u.ada.token.slice(4), json: { text: 'hi' }, expect: [401, 'unauthorized'] },
    { name: 'Basic credentials', path: tweets, authorization: 'Basic YWRhOmFkYQ==', json: { text: 'hi' }, expect: [401, 'unauthorized'] },
    { name: 'an expired token', path: tweets, token: (u) => u.expired, json: { text: 'hi' }, expect: [401, 'token_expired'] },
    { name: 'PATCH of another user', method: 'PATCH', path: (u) => `/users/${u.bob.id}`, token: ada, json: { bio: 'pwned' }, expect: [403, 'forbidden'] },
    { name: "another user's notifications", method: 'GET', path: (u) => `/users/${u.bob.id}/notifications`, token: ada, expect: [403, 'forbidden'] },
    { name: 'a token for another user', path: (u) => `/users/${u.bob.id}/tokens`, token: ada, expect: [403, 'forbidden'] },
    { name: "revoking another user's token", method: 'DELETE', path: (u) => `/users/${u.bob.id}/tokens/current`, token: ada, expect: [403, 'forbidden'] },
    {
      name: 'following on behalf of another user',
      method: 'PUT',
      path: (u) => `/users/${u.bob.id}/following/${u.ada.id}`,
      token: ada,
      expect: [403, 'forbidden'],
    },
    {
      name: 'following oneself',
      method: 'PUT',
      path: (u) => `/users/${u.ada.id}/following/${u.ada.id}`,
      token: ada,
      expect: [400, 'validation_failed', 'targetId'],
    },
  ],
  'content types': [
    { name: 'no content type', path: '/users', json: user('no_ctype'), headers: { 'content-type': null }, expect: [415, 'unsupported_media_type'] },
    { name: 'text/plain', path: '/users', json: user('text_plain'), headers: { 'content-type': 'text/plain' }, expect: [415, 'unsupported_media_type'] },
    {
      name: 'a form',
      path: '/users',
      raw: 'handle=form_user&displayName=x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      expect: [415, 'unsupported_media_type'],
    },
    {
      name: 'application/jsonp',
      path: tweets,
      token: ada,
      json: { text: 'hi' },
      headers: { 'content-type': 'application/jsonp' },
      expect: [415, 'unsupported_media_type'],
    },
    {
      name: 'gzip content encoding',
      path: tweets,
      token: ada,
      json: { text: 'hi' },
      headers: { 'content-encoding': 'gzip' },
      expect: [415, 'unsupported_media_type'],
    },
    {
      name: 'PATCH without content type',
      method: 'PATCH',
      path: self,
      token: ada,
      json: { bio: 'x' },
      headers: { 'content-type': null },
      expect: [415, 'unsupported_media_type'],
    },
  ],
};

/** SQL-looking and limit-hugging text that must be stored exactly as sent (NFC), with no error. */
const accepted: { name: string; text: string }[] = [
  { name: 'SQL that drops a table', text: "'); DROP TABLE tweets; --" },
  { name: 'SQL that widens a WHERE', text: "1' OR '1'='1' -- %_ \\" },
  { name: 'SQL that unions tokens', text: "x' UNION SELECT token_hash FROM tokens --" },
  { name: '280 emoji', text: '\u{1F44D}'.repeat(280) },
  { name: '280 family emoji', text: FAMILY.repeat(280) },
  { name: '280 letters with combining marks (NFC-composed)', text: 'e\u0301'.repeat(280) },
  { name: '280 letters with two combining marks', text: 'a\u0301\u0302'.repeat(280) },
];

describe(`hostile input at the HTTP API (${TEST_DB})`, function () {
  this.timeout(120_000);
  const sys = new TestSystem();
  let api: WarrenProcess;
  let db: Knex;
  let users: Users;
  let outboxBefore = 0;
  let emitted = 0;

  const at = <T>(v: Dyn<T>): T => (typeof v === 'function' ? (v as (u: Users) => T)(users) : v);

  async function send(c: Case): Promise<RawResponse> {
    const headers: Record<string, string> = {};
    const body = c.raw ?? (c.json === undefined ? undefined : JSON.stringify(c.json));
    if (body !== undefined) headers['content-type'] = 'application/json';
    for (const [k, v] of Object.entries(c.headers ?? {}))
      if (v === null) delete headers[k];
      else headers[k] = v;
    if (c.token !== undefined) headers.authorization = `Bearer ${at(c.token)}`;
    if (c.authorization !== undefined) headers.authorization = c.authorization;
    return rawHttp(sys.port, { method: c.method ?? 'POST', path: at(c.path), headers, body, chunked: c.chunked });
  }

  before(async () => {
    await sys.setUp({ http: { bodyLimitBytes: BODY_LIMIT } });
    expect(sys.config.http.bodyLimitBytes).to.equal(BODY_LIMIT);
    api = await sys.startApi();
    const suffix = Date.now().toString(36).slice(-5);
    const [a, b] = [await sys.createUser(`ada_${suffix}`), await sys.createUser(`bob_${suffix}`)];
    db = openApiDatabase(sys.config);
    users = { ada: a, bob: b, expired: await insertExpiredToken(db, a.id) };
    outboxBefore = await outboxRows(db);
  });

  after(async () => {
    await db?.destroy();
    await sys.tearDown();
  });

  for (const [table, cases] of Object.entries(tables)) {
    describe(table, () => {
      for (const c of cases) {
        const [status, code, field] = c.expect;
        it(`${c.name}: ${status} ${code}${field ? ` naming ${field}` : ''}`, async () => {
          const res = await send(c);
          expect(res.status, res.text.slice(0, 300)).to.equal(status);
          expect(res.json?.error?.code, res.text.slice(0, 300)).to.equal(code);
          expect(res.json.error.message).to.be.a('string').that.is.not.empty;
          expect(res.headers['x-request-id']).to.be.a('string').that.is.not.empty;
          if (field) expect((res.json.error.details ?? []).map((d: { path: string }) => d.path)).to.include(field);
        });
      }
    });
  }

  describe('stored verbatim', () => {
    for (const { name, text } of accepted) {
      it(`${name}: 201, read back as sent`, async () => {
        const res = await sys.request('POST', tweets, { token: users.ada.token, body: { text } });
        expect(res.status, res.text.slice(0, 300)).to.equal(201);
        emitted++;
        const read = await sys.request('GET', `/tweets/${res.json.id}`);
        expect(read.json.text).to.equal(text.normalize('NFC'));
      });
    }

    it(`an x-request-id of ${MAX_REQUEST_ID_LENGTH} characters: 201, kept as its event's correlation id; one longer is replaced`, async () => {
      const longest = 'r'.repeat(MAX_REQUEST_ID_LENGTH);
      const kept = await sys.request('POST', tweets, {
        token: users.ada.token,
        body: { text: 'the longest request id' },
        headers: { 'x-request-id': longest },
      });
      expect(kept.status, kept.text.slice(0, 300)).to.equal(201);
      emitted++;
      expect(kept.headers.get('x-request-id')).to.equal(longest);
      expect(await db('outbox').where({ correlation_id: longest }).count<{ n: number | string }[]>({ n: '*' }).first()).to.satisfy(
        (r: { n: number | string }) => Number(r.n) === 1,
      );

      const replaced = await sys.request('POST', tweets, {
        token: users.ada.token,
        body: { text: 'a request id too long' },
        headers: { 'x-request-id': 'r'.repeat(MAX_REQUEST_ID_LENGTH + 1) },
      });
      expect(replaced.status, replaced.text.slice(0, 300)).to.equal(201);
      emitted++;
      const generated = replaced.headers.get('x-request-id')!;
      expect(generated).to.match(/^[0-9a-f-]{36}$/);
      expect(await db('outbox').where({ correlation_id: generated }).count<{ n: number | string }[]>({ n: '*' }).first()).to.satisfy(
        (r: { n: number | string }) => Number(r.n) === 1,
      );
    });

    it('a SQL-looking displayName and bio, 200, read back as sent', async () => {
      const patch = { displayName: "Robert'); DROP TABLE users;--", bio: '" OR ""="' };
      const res = await sys.request('PATCH', `/users/${users.ada.id}`, { token: users.ada.token, body: patch });
      expect(res.status, res.text).to.equal(200);
      emitted++;
      expect((await sys.request('GET', `/users/${users.ada.id}`)).json).to.include(patch);
    });
  });

  describe('afterwards', () => {
    it('answers a bad request line and a NUL in a header with a JSON 400', async () => {
      for (const bytes of ['GET /tweets/1 OR 1=1 HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Evil: a\0b\r\n\r\n']) {
        const res = await rawSocket(sys.port, bytes);
        expect(res.status, res.text).to.equal(400);
        expect(res.json?.error?.code).to.equal('bad_request');
      }
    });

    it('wrote nothing to the outbox but the accepted writes', async () => {
      expect(await outboxRows(db)).to.equal(outboxBefore + emitted);
    });

    it('is still running, answering /healthz, and never answered 500', async () => {
      expect(api.running, api.tail()).to.equal(true);
      const res = await sys.request('GET', '/healthz');
      expect(res.status).to.equal(200);
      expect(api.output.filter((line) => line.includes('unhandled error'))).to.deep.equal([]);
    });
  });
});
