import { expect } from 'chai';
import { UnavailableError } from '../../../src/domain/errors';
import { createUser, outboxRows, startApi, type ApiHarness } from './harness';

describe('api: follows and timeline', () => {
  let api: ApiHarness;
  let alice: { id: string; handle: string; token: string };
  let bob: { id: string; handle: string; token: string };
  beforeEach(async () => {
    api = await startApi();
    alice = await createUser(api);
    bob = await createUser(api);
  });
  afterEach(async () => {
    await api.close();
  });

  async function tweet(user: { token: string }, text: string): Promise<string> {
    const res = await api.request('POST', '/tweets', { token: user.token, body: { text } });
    expect(res.status).to.equal(201);
    return res.body.id as string;
  }

  it('answers 400 naming targetId when a user follows themselves', async () => {
    const res = await api.request('PUT', `/users/${alice.id}/following/${alice.id}`, { token: alice.token });
    expect(res.status).to.equal(400);
    expect(res.body.error.details[0].path).to.equal('targetId');
    expect(await outboxRows(api, 'user.followed')).to.have.length(0);
  });

  it('answers 404 for an unknown target and 403 for following on behalf of another user', async () => {
    const unknown = await api.request('PUT', `/users/${alice.id}/following/0190a5c8-7a4e-7c3b-8f00-000000000000`, { token: alice.token });
    expect(unknown.status).to.equal(404);
    expect((await api.request('PUT', `/users/${alice.id}/following/not-a-uuid`, { token: alice.token })).status).to.equal(404);
    expect((await api.request('PUT', `/users/${bob.id}/following/${alice.id}`, { token: alice.token })).status).to.equal(403);
  });

  it('emits user.followed once when the same follow is made twice', async () => {
    const path = `/users/${alice.id}/following/${bob.id}`;
    expect((await api.request('PUT', path, { token: alice.token })).status).to.equal(204);
    expect((await api.request('PUT', path, { token: alice.token })).status).to.equal(204);
    const events = await outboxRows(api, 'user.followed');
    expect(events).to.have.length(1);
    expect(JSON.parse(events[0]!.payload)).to.include({ followerId: alice.id, followeeId: bob.id, followerHandle: alice.handle });
    expect(await api.db('follows')).to.have.length(1);
  });

  it('emits user.unfollowed (schema 1.1) with the follow removed, only when a follow existed', async () => {
    api.clock = new Date('2026-11-25T12:00:00.000Z');
    const path = `/users/${alice.id}/following/${bob.id}`;
    expect((await api.request('DELETE', path, { token: alice.token })).status).to.equal(204);
    expect(await outboxRows(api, 'user.unfollowed')).to.have.length(0);
    await api.request('PUT', path, { token: alice.token });
    expect((await api.request('DELETE', path, { token: alice.token })).status).to.equal(204);
    expect((await api.request('DELETE', path, { token: alice.token })).status).to.equal(204);
    const events = await api.db('outbox').where({ type: 'user.unfollowed' }).select('payload', 'schema_version', 'exchange', 'routing_key');
    expect(events).to.have.length(1);
    expect(events[0]).to.include({ schema_version: '1.1', exchange: 'user.events', routing_key: 'user.unfollowed' });
    expect(JSON.parse(events[0]!.payload)).to.deep.equal({ followerId: alice.id, followeeId: bob.id, at: '2026-11-25T12:00:00.000Z' });
    expect(await api.db('follows')).to.have.length(0);
  });

  it('refuses an unfollow with 503 while the outbox backlog is over its limit, removing nothing', async () => {
    const path = `/users/${alice.id}/following/${bob.id}`;
    await api.request('PUT', path, { token: alice.token });
    api.backlog = api.config.outbox.maxBacklog + 1;
    const res = await api.request('DELETE', path, { token: alice.token });
    expect(res.status).to.equal(503);
    expect(res.headers.get('retry-after')).to.be.a('string');
    expect(await api.db('follows')).to.have.length(1);
  });

  it("shows the user's and followees' tweets newest first, paged with nextCursor", async () => {
    const carol = await createUser(api);
    await api.request('PUT', `/users/${alice.id}/following/${bob.id}`, { token: alice.token });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push(await tweet(i % 2 === 0 ? alice : bob, `tweet ${i}`));
      await tweet(carol, `not followed ${i}`);
    }
    const newestFirst = [...ids].reverse();

    const first = await api.request('GET', `/users/${alice.id}/timeline?limit=2`);
    expect(first.status).to.equal(200);
    expect(first.body.items.map((t: { id: string }) => t.id)).to.deep.equal(newestFirst.slice(0, 2));
    expect(first.body.items[0]).to.include({ authorId: alice.id, authorHandle: alice.handle, text: 'tweet 4' });
    expect(first.body.nextCursor).to.be.a('string');

    const second = await api.request('GET', `/users/${alice.id}/timeline?limit=2&before=${first.body.nextCursor}`);
    expect(second.body.items.map((t: { id: string }) => t.id)).to.deep.equal(newestFirst.slice(2, 4));
    const third = await api.request('GET', `/users/${alice.id}/timeline?limit=2&before=${second.body.nextCursor}`);
    expect(third.body.items.map((t: { id: string }) => t.id)).to.deep.equal(newestFirst.slice(4));
    expect(third.body.nextCursor).to.equal(null);

    const all = await api.request('GET', `/users/${alice.id}/timeline`);
    expect(all.body.items).to.have.length(5);
    expect(all.body.nextCursor).to.equal(null);
  });

  it('drops a followee from the timeline after an unfollow', async () => {
    await api.request('PUT', `/users/${alice.id}/following/${bob.id}`, { token: alice.token });
    await tweet(bob, 'from bob');
    expect((await api.request('GET', `/users/${alice.id}/timeline`)).body.items).to.have.length(1);
    expect((await api.request('DELETE', `/users/${alice.id}/following/${bob.id}`, { token: alice.token })).status).to.equal(204);
    expect((await api.request('GET', `/users/${alice.id}/timeline`)).body.items).to.have.length(0);
  });

  it('answers 400 for limits outside 1-100, unknown parameters and invalid cursors, naming them', async () => {
    for (const limit of ['0', '101', 'abc', '2.5', '-1']) {
      const res = await api.request('GET', `/users/${alice.id}/timeline?limit=${limit}`);
      expect(res.status, `limit=${limit}`).to.equal(400);
      expect(res.body.error.details[0].path).to.equal('limit');
    }
    const unknown = await api.request('GET', `/users/${alice.id}/timeline?page=2`);
    expect(unknown.status).to.equal(400);
    expect(unknown.body.error.details[0].path).to.equal('page');
    for (const before of ['nope', Buffer.from('not-a-uuid').toString('base64url')]) {
      const res = await api.request('GET', `/users/${alice.id}/timeline?before=${before}`);
      expect(res.status).to.equal(400);
      expect(res.body.error.details[0].path).to.equal('before');
    }
  });

  it('asks the timeline service for the page, passing the limit and cursor, and answers what it says', async () => {
    const asked: unknown[] = [];
    const page = {
      items: [{ id: 'x', authorId: bob.id, authorHandle: bob.handle, text: 'from the service', createdAt: '2026-11-25T12:00:00.000Z' }],
      nextCursor: null,
    };
    api.timeline = { page: async (userId, query) => (asked.push({ userId, ...query }), page), close: async () => undefined };
    const cursor = Buffer.from(bob.id).toString('base64url');
    const res = await api.request('GET', `/users/${alice.id}/timeline?limit=7&before=${cursor}`);
    expect(res.status).to.equal(200);
    expect(res.body).to.deep.equal(page);
    expect(asked).to.deep.equal([{ userId: alice.id, limit: 7, before: cursor }]);
    await api.request('GET', `/users/${alice.id}/timeline`);
    expect(asked[1]).to.deep.equal({ userId: alice.id, limit: 20 });
    // Refused requests never reach the service.
    await api.request('GET', `/users/${alice.id}/timeline?limit=0`);
    await api.request('GET', `/users/${alice.id}/timeline?before=nope`);
    await api.request('GET', '/users/0190a5c8-7a4e-7c3b-8f00-000000000000/timeline');
    expect(asked).to.have.length(2);
  });

  it('answers 503 with Retry-After when no timeline service instance answers', async () => {
    api.timeline = {
      page: async () => {
        throw new UnavailableError('the timeline service did not answer; try again shortly', 1, 'timeline_unavailable');
      },
      close: async () => undefined,
    };
    const res = await api.request('GET', `/users/${alice.id}/timeline`);
    expect(res.status).to.equal(503);
    expect(res.headers.get('retry-after')).to.equal('1');
    expect(res.body.error.code).to.equal('timeline_unavailable');
  });

  it('answers 404 for the timeline of an unknown user', async () => {
    expect((await api.request('GET', '/users/0190a5c8-7a4e-7c3b-8f00-000000000000/timeline')).status).to.equal(404);
  });
});
