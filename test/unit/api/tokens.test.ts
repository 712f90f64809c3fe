import { expect } from 'chai';
import { tokenList } from '../../../src/api/responses';
import { utcDay } from '../../../src/api/middleware/auth';
import { createUser, startApi, type ApiHarness } from './harness';
import { waitFor } from '../../support/wait';

describe('api: a user’s tokens (list, revoke one, revoke all, cap)', () => {
  let api: ApiHarness;
  beforeEach(async () => {
    api = await startApi();
  });
  afterEach(async () => {
    await api.close();
  });

  const list = (user: { id: string }, token: string) => api.request('GET', `/users/${user.id}/tokens`, { token });
  const patch = (user: { id: string }, token: string) => api.request('PATCH', `/users/${user.id}`, { token, body: { bio: 'still me' } });

  it('lists the active tokens with id, created, expires and last-used day, never the secret nor its hash', async () => {
    const ada = await createUser(api);
    const second = await api.request('POST', `/users/${ada.id}/tokens`, { token: ada.token });
    expect(second.status).to.equal(201);
    expect(second.body.id).to.match(/^[0-9a-f-]{36}$/);

    const res = await list(ada, second.body.token);
    expect(res.status).to.equal(200);
    expect(tokenList.safeParse(res.body).success, JSON.stringify(res.body)).to.equal(true);
    expect(res.body.items).to.have.length(2);
    expect(res.body.items[0]).to.include({ id: second.body.id, expiresAt: second.body.expiresAt, current: true });
    expect(res.body.items[1].current).to.equal(false);
    const hashes = (await api.db('tokens').select('token_hash')).map((r: { token_hash: string }) => r.token_hash);
    const text = JSON.stringify(res.body);
    for (const secret of [ada.token, second.body.token, ...hashes]) expect(text).to.not.include(secret);

    // Used today (both tokens were presented): the day, recorded once, not the time.
    const today = utcDay(new Date());
    await waitFor(
      'both last-used days',
      async () => (await list(ada, ada.token)).body.items.every((t: { lastUsed: string | null }) => t.lastUsed === today),
      5_000,
    );
  });

  it('records the last-used day once per token per day, not on every request', async () => {
    const ada = await createUser(api);
    await patch(ada, ada.token);
    await waitFor('the first use recorded', async () => (await api.db('tokens').first('last_used_day')).last_used_day !== null, 5_000);
    const updates: string[] = [];
    api.db.on('query', (q: { sql: string }) => {
      if (/^update .tokens./i.test(q.sql)) updates.push(q.sql);
    });
    for (let i = 0; i < 5; i++) expect((await patch(ada, ada.token)).status).to.equal(200);
    expect(updates, 'same day: no write').to.deep.equal([]);

    api.clock = new Date(Date.now() + 86_400_000);
    await patch(ada, ada.token);
    await waitFor('the next day recorded', async () => (await api.db('tokens').first('last_used_day')).last_used_day === utcDay(api.clock!), 5_000);
    expect(updates).to.have.length(1);
  });

  it('revokes one token by its id (204), which then gets 401, and leaves the others working', async () => {
    const ada = await createUser(api);
    const other = (await api.request('POST', `/users/${ada.id}/tokens`, { token: ada.token })).body;
    const revoked = await api.request('DELETE', `/users/${ada.id}/tokens/${other.id}`, { token: ada.token });
    expect(revoked.status).to.equal(204);
    expect((await patch(ada, other.token)).status).to.equal(401);
    expect((await patch(ada, ada.token)).status).to.equal(200);
    expect((await list(ada, ada.token)).body.items.map((t: { id: string }) => t.id)).to.not.include(other.id);
    // Revoking it again is still done.
    expect((await api.request('DELETE', `/users/${ada.id}/tokens/${other.id}`, { token: ada.token })).status).to.equal(204);
  });

  it('answers 404 for a token id that is not that user’s (or no token at all), and revokes nothing', async () => {
    const ada = await createUser(api);
    const bob = await createUser(api);
    const bobs = (await list(bob, bob.token)).body.items[0].id;
    const res = await api.request('DELETE', `/users/${ada.id}/tokens/${bobs}`, { token: ada.token });
    expect(res.status).to.equal(404);
    expect(res.body.error.code).to.equal('not_found');
    expect((await api.request('DELETE', `/users/${ada.id}/tokens/0190a5c8-7a4e-7c3b-8f00-000000000000`, { token: ada.token })).status).to.equal(404);
    expect((await api.request('DELETE', `/users/${ada.id}/tokens/not-a-uuid`, { token: ada.token })).status).to.equal(404);
    expect((await patch(bob, bob.token)).status).to.equal(200);
  });

  it('revokes every token of the user, the one presented included, and no other user’s', async () => {
    const ada = await createUser(api);
    const bob = await createUser(api);
    const more = [];
    for (let i = 0; i < 3; i++) more.push((await api.request('POST', `/users/${ada.id}/tokens`, { token: ada.token })).body.token as string);
    const res = await api.request('DELETE', `/users/${ada.id}/tokens`, { token: more[0]! });
    expect(res.status).to.equal(204);
    for (const token of [ada.token, ...more]) {
      const after = await patch(ada, token);
      expect(after.status).to.equal(401);
      expect(after.body.error.code).to.equal('unauthorized');
    }
    expect((await patch(bob, bob.token)).status).to.equal(200);
  });

  it('answers 403 to another user’s token on every token route', async () => {
    const ada = await createUser(api);
    const bob = await createUser(api);
    const adas = (await list(ada, ada.token)).body.items[0].id;
    for (const [method, path] of [
      ['GET', `/users/${ada.id}/tokens`],
      ['POST', `/users/${ada.id}/tokens`],
      ['DELETE', `/users/${ada.id}/tokens/${adas}`],
      ['DELETE', `/users/${ada.id}/tokens`],
      ['DELETE', `/users/${ada.id}/tokens/current`],
    ] as const) {
      const res = await api.request(method, path, { token: bob.token });
      expect(res.status, `${method} ${path}`).to.equal(403);
      expect(res.body.error.code).to.equal('forbidden');
    }
    expect((await patch(ada, ada.token)).status).to.equal(200);
    expect((await list(ada, ada.token)).body.items).to.have.length(1);
  });

  it('caps active tokens at auth.maxTokens: over it 409 naming the cap; revoking one makes room', async () => {
    const cap = 3;
    const auth = api.config.auth;
    await api.close();
    api = await startApi({ auth: { ...auth, maxTokens: cap } });
    const ada = await createUser(api);
    const issue = () => api.request('POST', `/users/${ada.id}/tokens`, { token: ada.token });
    const issued = [];
    for (let i = 1; i < cap; i++) {
      const res = await issue();
      expect(res.status).to.equal(201);
      issued.push(res.body);
    }
    const over = await issue();
    expect(over.status).to.equal(409);
    expect(over.body.error.code).to.equal('too_many_tokens');
    expect(over.body.error.message).to.include(`at most ${cap} active tokens`).and.include('auth.maxTokens');
    expect(await api.db('tokens').count({ n: '*' }).first()).to.deep.equal({ n: cap });

    expect((await api.request('DELETE', `/users/${ada.id}/tokens/${issued[0].id}`, { token: ada.token })).status).to.equal(204);
    expect((await issue()).status, 'a revoked token does not count').to.equal(201);
    expect((await issue()).status).to.equal(409);
  });
});
