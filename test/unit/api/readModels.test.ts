import { expect } from 'chai';
import type { Knex } from 'knex';
import { newId } from '../../../src/domain/ids';
import { openDatabase } from '../../../src/db/knex';
import { createUser, startApi, type ApiHarness } from './harness';

/** The read models are written by their workers; here a test writes them through their own databases. */
describe('api: analytics and notifications read models', () => {
  let api: ApiHarness;
  let analytics: Knex;
  let notifications: Knex;
  let alice: { id: string; handle: string; token: string };
  beforeEach(async () => {
    api = await startApi();
    analytics = openDatabase(api.config, 'analytics');
    notifications = openDatabase(api.config, 'notifications');
    alice = await createUser(api);
  });
  afterEach(async () => {
    await analytics.destroy();
    await notifications.destroy();
    await api.close();
  });

  it('serves a user with no tweets counted yet as zeros, and 404 for an unknown user', async () => {
    const res = await api.request('GET', `/analytics/users/${alice.id}`);
    expect(res.status).to.equal(200);
    expect(res.body).to.deep.equal({ userId: alice.id, handle: alice.handle, tweetCount: 0, lastTweetAt: null, topHashtags: [], topMentions: [] });
    expect((await api.request('GET', '/analytics/users/0190a5c8-7a4e-7c3b-8f00-000000000000')).status).to.equal(404);
  });

  it("serves a user's counts and top hashtags and mentions", async () => {
    await analytics('user_stats').insert({ user_id: alice.id, handle: alice.handle, tweet_count: 3, last_tweet_at: '2026-11-25T09:00:00.000Z' });
    await analytics('user_hashtags').insert([
      { user_id: alice.id, tag: 'node', count: 1 },
      { user_id: alice.id, tag: 'warren', count: 3 },
    ]);
    await analytics('user_mentions').insert({ user_id: alice.id, handle: 'bob', count: 2 });
    const res = await api.request('GET', `/analytics/users/${alice.id}`);
    expect(res.body).to.include({ tweetCount: 3, lastTweetAt: '2026-11-25T09:00:00.000Z' });
    expect(res.body.topHashtags).to.deep.equal([
      { tag: 'warren', count: 3 },
      { tag: 'node', count: 1 },
    ]);
    expect(res.body.topMentions).to.deep.equal([{ handle: 'bob', count: 2 }]);
  });

  it('serves top hashtags with a limit, and a summary with 24 hourly buckets', async () => {
    await analytics('hashtags').insert([
      { tag: 'a', count: 5 },
      { tag: 'b', count: 9 },
      { tag: 'c', count: 1 },
    ]);
    await analytics('user_stats').insert([
      { user_id: alice.id, handle: alice.handle, tweet_count: 4 },
      { user_id: newId(), handle: 'quiet', tweet_count: 0 },
    ]);
    api.clock = new Date('2026-11-25T09:30:00.000Z');
    await analytics('tweets_per_hour').insert([
      { hour: '2026-11-25T09', count: 3 },
      { hour: '2026-11-24T10', count: 1 },
      { hour: '2026-11-24T09', count: 7 }, // 24 hours ago: outside the window
    ]);
    const top = await api.request('GET', '/analytics/hashtags?limit=2');
    expect(top.body).to.deep.equal({
      items: [
        { tag: 'b', count: 9 },
        { tag: 'a', count: 5 },
      ],
      nextCursor: null,
    });
    expect((await api.request('GET', '/analytics/hashtags?limit=0')).status).to.equal(400);

    const summary = await api.request('GET', '/analytics/summary');
    expect(summary.body.totals).to.deep.equal({ tweets: 4, usersWithTweets: 1, hashtags: 3 });
    expect(summary.body.tweetsPerHour).to.have.length(24);
    expect(summary.body.tweetsPerHour[0]).to.deep.equal({ hour: '2026-11-24T10:00:00.000Z', count: 1 });
    expect(summary.body.tweetsPerHour[23]).to.deep.equal({ hour: '2026-11-25T09:00:00.000Z', count: 3 });
    const total = summary.body.tweetsPerHour.reduce((n: number, h: { count: number }) => n + h.count, 0);
    expect(total).to.equal(4);
  });

  it("serves a user's own notifications newest first, paged, and to nobody else", async () => {
    const bob = await createUser(api);
    const ids = Array.from({ length: 3 }, () => newId());
    await notifications('notifications').insert(
      ids.map((id, i) => ({
        id,
        user_id: alice.id,
        kind: 'followed',
        text: `n${i}`,
        data: JSON.stringify({ i }),
        message_id: newId(),
        created_at: new Date().toISOString(),
      })),
    );
    await notifications('notifications').insert({
      id: newId(),
      user_id: bob.id,
      kind: 'followed',
      text: 'bob',
      data: '{}',
      message_id: newId(),
      created_at: new Date().toISOString(),
    });

    const first = await api.request('GET', `/users/${alice.id}/notifications?limit=2`, { token: alice.token });
    expect(first.status).to.equal(200);
    expect(first.body.items.map((n: { id: string }) => n.id)).to.deep.equal([ids[2], ids[1]]);
    expect(first.body.items[0]).to.include({ kind: 'followed', text: 'n2' });
    expect(first.body.items[0].data).to.deep.equal({ i: 2 });
    const second = await api.request('GET', `/users/${alice.id}/notifications?limit=2&before=${first.body.nextCursor}`, { token: alice.token });
    expect(second.body).to.deep.include({ nextCursor: null });
    expect(second.body.items.map((n: { id: string }) => n.id)).to.deep.equal([ids[0]]);

    expect((await api.request('GET', `/users/${alice.id}/notifications`)).status).to.equal(401);
    expect((await api.request('GET', `/users/${alice.id}/notifications`, { token: bob.token })).status).to.equal(403);
  });
});
