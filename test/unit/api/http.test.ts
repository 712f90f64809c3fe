import http from 'node:http';
import { expect } from 'chai';
import { createUser, freshHandle, startApi, type ApiHarness } from './harness';

/** A raw request whose body arrives in chunks with no Content-Length, as a streaming client sends it. */
function chunkedPost(url: string, path: string, chunks: Buffer[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url + path, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    // The server may close as soon as it has answered; the answer is what matters.
    req.on('error', reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

describe('api: HTTP conventions', () => {
  let api: ApiHarness;
  before(async () => {
    api = await startApi({ http: { host: '127.0.0.1', port: 0, bodyLimitBytes: 1024, drainDelayMs: 0 } });
  });
  after(async () => {
    await api.close();
  });

  it('echoes a sane x-request-id and replaces one that is not', async () => {
    const sane = await api.request('GET', '/healthz', { headers: { 'x-request-id': 'abc-123.x:y_z' } });
    expect(sane.headers.get('x-request-id')).to.equal('abc-123.x:y_z');
    const insane = await api.request('GET', '/healthz', { headers: { 'x-request-id': 'no spaces <script>' } });
    expect(insane.headers.get('x-request-id')).to.match(/^[0-9a-f-]{36}$/);
    const tooLong = await api.request('GET', '/healthz', { headers: { 'x-request-id': 'a'.repeat(129) } });
    expect(tooLong.headers.get('x-request-id')).to.have.length(36);
    const none = await api.request('GET', '/users/nope');
    expect(none.status).to.equal(404);
    expect(none.headers.get('x-request-id')).to.match(/^[0-9a-f-]{36}$/);
  });

  it('answers 415 unsupported_media_type for a body that is not JSON', async () => {
    const res = await api.request('POST', '/users', { body: 'handle=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(res.status).to.equal(415);
    expect(res.body.error.code).to.equal('unsupported_media_type');
    const noType = await fetch(`${api.url}/users`, { method: 'POST', body: new Uint8Array([123, 125]) });
    expect(noType.status).to.equal(415);
  });

  it('answers 413 payload_too_large over http.bodyLimitBytes, declared or streamed', async () => {
    const declared = await api.request('POST', '/users', { body: { handle: freshHandle(), displayName: 'x', bio: 'b'.repeat(2000) } });
    expect(declared.status).to.equal(413);
    expect(declared.body.error.code).to.equal('payload_too_large');

    const streamed = await chunkedPost(api.url, '/users', [Buffer.from('{"bio":"'), Buffer.alloc(4096, 'b'), Buffer.from('"}')]);
    expect(streamed.status).to.equal(413);
    expect(JSON.parse(streamed.body).error.code).to.equal('payload_too_large');
    expect(await api.db('users').count({ n: '*' }).first()).to.deep.equal({ n: 0 });
  });

  it('answers 400 for malformed JSON and names the field of a wrong type', async () => {
    const malformed = await api.request('POST', '/users', { body: '{"handle": ' });
    expect(malformed.status).to.equal(400);
    expect(malformed.body.error.details[0].path).to.equal('body');
    const wrongType = await api.request('POST', '/users', { body: { handle: freshHandle(), displayName: 42 } });
    expect(wrongType.status).to.equal(400);
    expect(wrongType.body.error.details).to.have.length(1);
    expect(wrongType.body.error.details[0].path).to.equal('displayName');
  });

  it('answers unknown routes 404, wrong methods 405 and unknown methods 501 in the error shape', async () => {
    const missing = await api.request('GET', '/nowhere');
    expect(missing.status).to.equal(404);
    expect(missing.body.error.code).to.equal('not_found');
    const wrongMethod = await api.request('DELETE', '/healthz');
    expect(wrongMethod.status).to.equal(405);
    expect(wrongMethod.body.error.code).to.equal('method_not_allowed');
    const unknownMethod = await api.request('PROPFIND', '/healthz');
    expect(unknownMethod.status).to.equal(501);
    expect(unknownMethod.body.error.code).to.equal('not_implemented');
  });

  it('accepts a body-less POST without a content type', async () => {
    const alice = await createUser(api);
    const res = await api.request('POST', `/users/${alice.id}/tokens`, { token: alice.token });
    expect(res.status).to.equal(201);
  });
});
