import { expect } from 'chai';
import sinon from 'sinon';
import * as outbox from '../../../src/outbox/store';
import { waitFor } from '../../support/wait';
import { createUser, outboxRows, startApi, type ApiHarness } from './harness';

const FLAG = '\u{1F1FA}\u{1F1E6}'; // one flag: two code points, four UTF-16 units, one character

describe('api: tweets', () => {
  let api: ApiHarness;
  let alice: { id: string; handle: string; token: string };
  beforeEach(async () => {
    api = await startApi();
    alice = await createUser(api);
  });
  afterEach(async () => {
    sinon.restore();
    await api.close();
  });

  async function tweetCount(): Promise<number> {
    const row = await api.db('tweets').count({ n: '*' }).first();
    return Number(row?.n);
  }

  it('posts a tweet and writes its tweet.created event in the same transaction', async () => {
    const res = await api.request('POST', '/tweets', { token: alice.token, body: { text: 'hello #warren' }, headers: { 'x-request-id': 'tw-1' } });
    expect(res.status).to.equal(201);
    expect(res.body).to.include({ authorId: alice.id, authorHandle: alice.handle, text: 'hello #warren' });
    const events = await outboxRows(api, 'tweet.created');
    expect(events).to.have.length(1);
    expect(JSON.parse(events[0]!.payload)).to.deep.equal({
      tweetId: res.body.id,
      authorId: alice.id,
      authorHandle: alice.handle,
      text: 'hello #warren',
      createdAt: res.body.createdAt,
    });
    expect(events[0]!.correlation_id).to.equal('tw-1');
    expect(api.wakeups).to.equal(2); // user.created, then tweet.created

    const got = await api.request('GET', `/tweets/${res.body.id}`);
    expect(got.body).to.deep.equal(res.body);
  });

  it('writes no tweet when its outbox event cannot be written', async () => {
    // The token's first use of the day is recorded first, so the tweet is the only write of its group commit.
    expect((await api.request('GET', `/users/${alice.id}/tokens`, { token: alice.token })).status).to.equal(200);
    await waitFor('the last-used day', async () => (await api.db('tokens').first('last_used_day')).last_used_day !== null, 5_000);
    sinon.stub(outbox, 'enqueueEvents').rejects(new Error('disk on fire'));
    const wakeupsBefore = api.wakeups;
    const res = await api.request('POST', '/tweets', { token: alice.token, body: { text: 'lost?' } });
    expect(res.status).to.equal(500);
    expect(res.body.error.code).to.equal('internal');
    expect(await tweetCount()).to.equal(0);
    expect(api.wakeups).to.equal(wakeupsBefore);
  });

  it('counts characters as graphemes: 280 flags pass, 281 are rejected naming text', async () => {
    const ok = await api.request('POST', '/tweets', { token: alice.token, body: { text: FLAG.repeat(280) } });
    expect(ok.status).to.equal(201);
    const tooLong = await api.request('POST', '/tweets', { token: alice.token, body: { text: FLAG.repeat(281) } });
    expect(tooLong.status).to.equal(400);
    expect(tooLong.body.error.details).to.have.length(1);
    expect(tooLong.body.error.details[0].path).to.equal('text');
    const blank = await api.request('POST', '/tweets', { token: alice.token, body: { text: '   ' } });
    expect(blank.status).to.equal(400);
    expect(blank.body.error.details[0].path).to.equal('text');
    expect(await tweetCount()).to.equal(1);
  });

  it('stores text NFC-normalised', async () => {
    const res = await api.request('POST', '/tweets', { token: alice.token, body: { text: 'cafe\u0301' } });
    expect(res.status).to.equal(201);
    expect(res.body.text).to.equal('caf\u00e9');
    const row = await api.db('tweets').where({ id: res.body.id }).first();
    expect(row.text).to.equal('caf\u00e9');
  });

  it('requires a token', async () => {
    const res = await api.request('POST', '/tweets', { body: { text: 'anonymous' } });
    expect(res.status).to.equal(401);
  });

  it('replays a repeated Idempotency-Key: same tweet, one row, one event; another body is 409', async () => {
    const headers = { 'idempotency-key': 'tweet-key-1' };
    const first = await api.request('POST', '/tweets', { token: alice.token, body: { text: 'once' }, headers });
    const again = await api.request('POST', '/tweets', { token: alice.token, body: { text: 'once' }, headers });
    expect(first.status).to.equal(201);
    expect(again.status).to.equal(201);
    expect(again.body).to.deep.equal(first.body);
    expect(await tweetCount()).to.equal(1);
    expect(await outboxRows(api, 'tweet.created')).to.have.length(1);

    const other = await api.request('POST', '/tweets', { token: alice.token, body: { text: 'twice' }, headers });
    expect(other.status).to.equal(409);
    expect(other.body.error.code).to.equal('idempotency_key_reused');
    expect(await tweetCount()).to.equal(1);
  });

  it('creates one tweet for concurrent requests with one Idempotency-Key', async () => {
    const headers = { 'idempotency-key': 'race' };
    const answers = await Promise.all(Array.from({ length: 5 }, () => api.request('POST', '/tweets', { token: alice.token, body: { text: 'race' }, headers })));
    expect(answers.map((a) => a.status)).to.deep.equal([201, 201, 201, 201, 201]);
    expect(new Set(answers.map((a) => a.body.id)).size).to.equal(1);
    expect(await tweetCount()).to.equal(1);
    expect(await outboxRows(api, 'tweet.created')).to.have.length(1);
  });

  it('keeps keys per caller and forgets them after idempotency.ttlHours', async () => {
    const bob = await createUser(api);
    const headers = { 'idempotency-key': 'shared' };
    const a = await api.request('POST', '/tweets', { token: alice.token, body: { text: 'same' }, headers });
    const b = await api.request('POST', '/tweets', { token: bob.token, body: { text: 'same' }, headers });
    expect(b.body.id).to.not.equal(a.body.id);

    api.clock = new Date(Date.now() + (api.config.idempotency.ttlHours + 1) * 3_600_000);
    const later = await api.request('POST', '/tweets', { token: alice.token, body: { text: 'same' }, headers });
    expect(later.status).to.equal(201);
    expect(later.body.id).to.not.equal(a.body.id);
    // The expired records were pruned; alice's key now holds the new response.
    const records = await api.db('idempotency_keys').where({ caller: alice.id });
    expect(records).to.have.length(1);
    expect(records[0]).to.include({ caller: alice.id, created_at: api.clock.getTime() });
  });

  it('rejects an Idempotency-Key over 64 characters, naming the header', async () => {
    const res = await api.request('POST', '/tweets', { token: alice.token, body: { text: 'x' }, headers: { 'idempotency-key': 'k'.repeat(65) } });
    expect(res.status).to.equal(400);
    expect(res.body.error.details[0].path).to.equal('Idempotency-Key');
    expect(await tweetCount()).to.equal(0);
  });

  it('answers 503 outbox_backlog with Retry-After when the backlog is over its bound, writing nothing', async () => {
    api.backlog = api.config.outbox.maxBacklog + 1;
    const res = await api.request('POST', '/tweets', { token: alice.token, body: { text: 'wait' } });
    expect(res.status).to.equal(503);
    expect(res.body.error.code).to.equal('outbox_backlog');
    expect(Number(res.headers.get('retry-after'))).to.be.greaterThan(0);
    expect(await tweetCount()).to.equal(0);
    // Reads are not held back.
    expect((await api.request('GET', `/users/${alice.id}/timeline`)).status).to.equal(200);
    api.backlog = api.config.outbox.maxBacklog;
    expect((await api.request('POST', '/tweets', { token: alice.token, body: { text: 'now' } })).status).to.equal(201);
  });

  it('answers 503 database_unavailable with Retry-After when the database is locked', async () => {
    const busy = Object.assign(new Error('SQLITE_BUSY: database is locked'), { code: 'SQLITE_BUSY', errno: 5 });
    sinon.stub(api.db, 'transaction').rejects(busy);
    const res = await api.request('POST', '/tweets', { token: alice.token, body: { text: 'busy' } });
    expect(res.status).to.equal(503);
    expect(res.body.error.code).to.equal('database_unavailable');
    expect(res.headers.get('retry-after')).to.equal('1');
    sinon.restore();
    expect(await tweetCount()).to.equal(0);
  });

  it('answers 404 for a tweet id that is not a UUID or does not exist', async () => {
    expect((await api.request('GET', '/tweets/123')).status).to.equal(404);
    expect((await api.request('GET', '/tweets/0190a5c8-7a4e-7c3b-8f00-000000000000')).status).to.equal(404);
  });
});
