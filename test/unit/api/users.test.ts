import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { expect } from 'chai';
import { createUser, freshHandle, outboxRows, startApi, type ApiHarness, type ApiResponse } from './harness';

describe('api: users and tokens', () => {
  let api: ApiHarness;
  beforeEach(async () => {
    api = await startApi();
  });
  afterEach(async () => {
    await api.close();
  });

  it('creates a user with a token that authenticates, and emits user.created', async () => {
    const handle = freshHandle('alice');
    const res = await api.request('POST', '/users', { body: { handle, displayName: 'Alice', bio: 'hi' }, headers: { 'x-request-id': 'req-create-1' } });
    expect(res.status).to.equal(201);
    expect(res.body.user).to.include({ handle, displayName: 'Alice', bio: 'hi' });
    expect(res.body.token).to.match(/^wrn_[A-Za-z0-9_-]{43}$/);
    const stored = await api.db('tokens').where({ user_id: res.body.user.id });
    expect(stored).to.have.length(1);
    expect(stored[0].token_hash)
      .to.match(/^[0-9a-f]{64}$/)
      .and.not.equal(res.body.token);

    const events = await outboxRows(api, 'user.created');
    expect(events).to.have.length(1);
    expect(JSON.parse(events[0]!.payload)).to.include({ userId: res.body.user.id, handle, displayName: 'Alice' });
    expect(events[0]!.correlation_id).to.equal('req-create-1');
    expect(api.wakeups).to.equal(1);

    const got = await api.request('GET', `/users/${res.body.user.id}`);
    expect(got.status).to.equal(200);
    expect(got.body).to.deep.equal(res.body.user);

    const patched = await api.request('PATCH', `/users/${res.body.user.id}`, { token: res.body.token, body: { displayName: 'Alice B.' } });
    expect(patched.status).to.equal(200);
    expect(patched.body.displayName).to.equal('Alice B.');
  });

  it('answers 401 without, with a malformed or with an unknown token, and 403 for another user', async () => {
    const alice = await createUser(api);
    const bob = await createUser(api);
    const path = `/users/${alice.id}`;
    const body = { displayName: 'x' };
    const missing = await api.request('PATCH', path, { body });
    expect(missing.status).to.equal(401);
    expect(missing.body.error.code).to.equal('unauthorized');
    expect(missing.headers.get('www-authenticate')).to.match(/^Bearer/);
    expect((await api.request('PATCH', path, { body, token: 'nonsense' })).status).to.equal(401);
    const unknown = 'wrn_' + Buffer.alloc(32, 7).toString('base64url');
    expect((await api.request('PATCH', path, { body, token: unknown })).body.error.code).to.equal('unauthorized');
    const forbidden = await api.request('PATCH', path, { body, token: bob.token });
    expect(forbidden.status).to.equal(403);
    expect(forbidden.body.error.code).to.equal('forbidden');
    expect((await api.request('GET', path)).body.displayName).to.not.equal('x');
  });

  it('answers 401 token_expired once the token is past auth.tokenTtlDays', async () => {
    const alice = await createUser(api);
    const ttlMs = api.config.auth.tokenTtlDays * 86_400_000;
    api.clock = new Date(Date.now() + ttlMs - 60_000);
    expect((await api.request('POST', `/users/${alice.id}/tokens`, { token: alice.token })).status).to.equal(201);
    api.clock = new Date(Date.now() + ttlMs + 60_000);
    const res = await api.request('PATCH', `/users/${alice.id}`, { token: alice.token, body: { bio: 'late' } });
    expect(res.status).to.equal(401);
    expect(res.body.error.code).to.equal('token_expired');
  });

  it('issues a new token and revokes only the one presented', async () => {
    const alice = await createUser(api);
    const issued = await api.request('POST', `/users/${alice.id}/tokens`, { token: alice.token });
    expect(issued.status).to.equal(201);
    expect(issued.body.token).to.match(/^wrn_/).and.not.equal(alice.token);
    expect(Date.parse(issued.body.expiresAt)).to.be.greaterThan(Date.now() + 80 * 86_400_000);

    const revoked = await api.request('DELETE', `/users/${alice.id}/tokens/current`, { token: alice.token });
    expect(revoked.status).to.equal(204);
    expect((await api.request('PATCH', `/users/${alice.id}`, { token: alice.token, body: { bio: 'a' } })).status).to.equal(401);
    expect((await api.request('PATCH', `/users/${alice.id}`, { token: issued.body.token, body: { bio: 'a' } })).status).to.equal(200);
  });

  it('keeps handles unique regardless of case (409 handle_taken), on create and on rename', async () => {
    const handle = freshHandle('Carol');
    await createUser(api, handle);
    const again = await api.request('POST', '/users', { body: { handle: handle.toUpperCase(), displayName: 'Other' } });
    expect(again.status).to.equal(409);
    expect(again.body.error.code).to.equal('handle_taken');
    expect(await api.db('users').count({ n: '*' }).first()).to.deep.equal({ n: 1 });

    const dave = await createUser(api);
    const rename = await api.request('PATCH', `/users/${dave.id}`, { token: dave.token, body: { handle: handle.toLowerCase() } });
    expect(rename.status).to.equal(409);
    expect(rename.body.error.code).to.equal('handle_taken');
    expect(await outboxRows(api, 'user.updated')).to.have.length(0);
  });

  it('emits user.updated with from/to only for fields that changed, and nothing for a no-op', async () => {
    const handle = freshHandle('erin');
    const erin = await createUser(api, handle);
    const same = await api.request('PATCH', `/users/${erin.id}`, { token: erin.token, body: { handle, displayName: `Name of ${handle}` } });
    expect(same.status).to.equal(200);
    expect(await outboxRows(api, 'user.updated')).to.have.length(0);

    // Changing only the case of one's own handle is a change, not a conflict.
    const res = await api.request('PATCH', `/users/${erin.id}`, { token: erin.token, body: { handle: handle.toUpperCase(), bio: 'new bio' } });
    expect(res.status).to.equal(200);
    expect(res.body).to.include({ handle: handle.toUpperCase(), bio: 'new bio' });
    const events = await outboxRows(api, 'user.updated');
    expect(events).to.have.length(1);
    const body = JSON.parse(events[0]!.payload);
    expect(body.userId).to.equal(erin.id);
    expect(body.changes).to.deep.equal({ handle: { from: handle, to: handle.toUpperCase() }, bio: { from: null, to: 'new bio' } });
  });

  it('validates bodies strictly and names the fields', async () => {
    const long = await api.request('POST', '/users', { body: { handle: 'ab', displayName: 'x'.repeat(101), bio: 'b'.repeat(501) } });
    expect(long.status).to.equal(400);
    expect(long.body.error.code).to.equal('validation_failed');
    expect(long.body.error.details.map((d: { path: string }) => d.path)).to.have.members(['handle', 'displayName', 'bio']);

    const alice = await createUser(api);
    const unknown = await api.request('PATCH', `/users/${alice.id}`, { token: alice.token, body: { displayName: 'ok', admin: true } });
    expect(unknown.status).to.equal(400);
    expect(unknown.body.error.details).to.deep.include({ path: 'admin', message: 'is not a known field' });
    const empty = await api.request('PATCH', `/users/${alice.id}`, { token: alice.token, body: {} });
    expect(empty.status).to.equal(400);
  });

  it('answers 404 for ids that are not UUIDs and for unknown users', async () => {
    const notUuid = await api.request('GET', '/users/not-a-uuid');
    expect(notUuid.status).to.equal(404);
    expect(notUuid.body.error.code).to.equal('not_found');
    expect((await api.request('GET', '/users/0190a5c8-7a4e-7c3b-8f00-000000000000')).status).to.equal(404);
  });

  it('replays POST /users for a repeated Idempotency-Key, and 409s the key with another body', async () => {
    const handle = freshHandle('idem');
    const body = { handle, displayName: 'Idem' };
    const first = await api.request('POST', '/users', { body, headers: { 'idempotency-key': 'signup-1' } });
    const second = await api.request('POST', '/users', { body, headers: { 'idempotency-key': 'signup-1' } });
    expect(first.status).to.equal(201);
    expect(second.status).to.equal(201);
    expect(second.body).to.deep.equal(first.body);
    expect(second.headers.get('idempotent-replayed')).to.equal('true');
    expect(await outboxRows(api, 'user.created')).to.have.length(1);
    const other = await api.request('POST', '/users', { body: { ...body, displayName: 'Other' }, headers: { 'idempotency-key': 'signup-1' } });
    expect(other.status).to.equal(409);
    expect(other.body.error.code).to.equal('idempotency_key_reused');
  });

  it('holds no sign-up token at rest: no table row nor database file byte has it, and the replay’s token still works', async () => {
    const headers = { 'idempotency-key': 'c1d2e3f4-signup-at-rest' };
    const body = { handle: freshHandle('rest'), displayName: 'At Rest' };
    const first = await api.request('POST', '/users', { body, headers });
    expect(first.status).to.equal(201);
    const token: string = first.body.token;

    const tables = (await api.db.raw("SELECT name FROM sqlite_master WHERE type = 'table'")).map((t: { name: string }) => t.name);
    expect(tables).to.include.members(['idempotency_keys', 'tokens', 'users']);
    for (const table of tables) {
      const rows = await api.db(table).select();
      expect(JSON.stringify(rows), table).to.not.include(token).and.not.include(headers['idempotency-key']);
    }
    const dir = api.config.database.dir;
    const files = fs.readdirSync(dir).filter((f) => f.startsWith('api.'));
    expect(files.some((f) => f.endsWith('-wal'))).to.equal(true);
    for (const file of files) expect(fs.readFileSync(path.join(dir, file)).includes(token), file).to.equal(false);

    const replay = await api.request('POST', '/users', { body, headers });
    expect(replay.status).to.equal(201);
    expect(replay.headers.get('idempotent-replayed')).to.equal('true');
    expect(replay.body.token).to.equal(token);
    expect((await api.request('PATCH', `/users/${first.body.user.id}`, { token: replay.body.token, body: { bio: 'replayed' } })).status).to.equal(200);
  });

  it('keeps a sign-up Idempotency-Key per client address: another client on the same key never gets the first token', async () => {
    const body = JSON.stringify({ handle: freshHandle('addr'), displayName: 'Addr' });
    const headers = { 'idempotency-key': 'signup-shared' };
    const first = await api.request('POST', '/users', { body, headers });
    expect(first.status).to.equal(201);
    // The same key and body from another loopback address: a caller of its own.
    const other = await new Promise<{ status: number; body: ApiResponse['body'] }>((resolve, reject) => {
      const req = http.request(
        `${api.url}/users`,
        { method: 'POST', localAddress: '127.0.0.2', headers: { ...headers, 'content-type': 'application/json' } },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString('utf8')));
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(other.status, 'the handle is taken: a new sign-up, not a replay').to.equal(409);
    expect(other.body.error.code).to.equal('handle_taken');
    expect(JSON.stringify(other.body)).to.not.include(first.body.token);
  });
});
