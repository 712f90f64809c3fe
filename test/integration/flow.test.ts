import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { newId } from '../../src/domain/ids';
import { peek, rawPublish } from '../support/amqp';
import { TestSystem, TEST_DB, waitFor } from '../support/system';

const run = promisify(execFile);
const cli = path.resolve(__dirname, '..', '..', 'src', 'cli.js');

describe(`Warren end to end (${TEST_DB})`, function () {
  this.timeout(90_000);
  const sys = new TestSystem();
  let ada: { id: string; token: string };

  before(async () => {
    await sys.setUp();
    await sys.startApi();
    await sys.startWorker('analytics');
    await sys.startWorker('notifications');
    ada = await sys.createUser('ada_' + Date.now().toString(36).slice(-5), 'Ada');
  });

  after(async () => {
    await sys.tearDown();
  });

  const tweetCount = async (userId: string): Promise<number> => (await sys.request('GET', `/analytics/users/${userId}`)).json?.tweetCount ?? 0;

  it('counts a tweet posted over HTTP in analytics', async () => {
    const res = await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'hello #Warren @nobody' } });
    expect(res.status).to.equal(201);
    await waitFor('the tweet to be counted', async () => (await tweetCount(ada.id)) === 1);
    const stats = (await sys.request('GET', `/analytics/users/${ada.id}`)).json;
    expect(JSON.stringify(stats.topHashtags)).to.include('warren');
    const hashtags = (await sys.request('GET', '/analytics/hashtags?limit=5')).json;
    expect(JSON.stringify(hashtags)).to.include('warren');
  });

  it('turns a profile change into a notification', async () => {
    const res = await sys.request('PATCH', `/users/${ada.id}`, { token: ada.token, body: { displayName: 'Ada L.' } });
    expect(res.status).to.equal(200);
    const items = await waitFor('the notification', async () => {
      const list = await sys.request('GET', `/users/${ada.id}/notifications`, { token: ada.token });
      return list.json?.items?.length ? list.json.items : undefined;
    });
    expect(JSON.stringify(items[0])).to.include('displayName');
  });

  it('notifies the followee of a new follower, once', async () => {
    const bob = await sys.createUser('bob_' + Date.now().toString(36).slice(-5));
    expect((await sys.request('PUT', `/users/${bob.id}/following/${ada.id}`, { token: bob.token })).status).to.equal(204);
    expect((await sys.request('PUT', `/users/${bob.id}/following/${ada.id}`, { token: bob.token })).status).to.equal(204);
    await waitFor('the follow notification', async () => {
      const list = await sys.request('GET', `/users/${ada.id}/notifications`, { token: ada.token });
      return list.json.items.some((n: { text: string }) => n.text.includes('followed you'));
    });
    await new Promise((r) => setTimeout(r, 500));
    const list = await sys.request('GET', `/users/${ada.id}/notifications`, { token: ada.token });
    expect(list.json.items.filter((n: { text: string }) => n.text.includes('followed you'))).to.have.length(1);
  });

  it('acks and ignores a known type the consumer does not handle (user.created at notifications)', async () => {
    await sys.createUser('carol_' + Date.now().toString(36).slice(-5));
    await waitFor('the notifications queue to drain', async () => (await sys.queueDepth('notifications.user-events')) === 0);
    expect(await sys.queueDepth('notifications.user-events.dlq')).to.equal(0);
  });

  it('creates one tweet for the same Idempotency-Key twice', async () => {
    const before = await tweetCount(ada.id);
    const key = newId();
    const first = await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'once only' }, headers: { 'idempotency-key': key } });
    const second = await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'once only' }, headers: { 'idempotency-key': key } });
    expect(first.status).to.equal(201);
    expect(second.status).to.equal(201);
    expect(second.json.id).to.equal(first.json.id);
    await waitFor('the tweet to be counted', async () => (await tweetCount(ada.id)) === before + 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(await tweetCount(ada.id)).to.equal(before + 1);
  });

  it('applies a message delivered twice once', async () => {
    const before = await tweetCount(ada.id);
    const body = { tweetId: newId(), authorId: ada.id, authorHandle: 'ada', text: 'twice', createdAt: new Date().toISOString() };
    const props = { messageId: newId(), type: 'tweet.created', contentType: 'application/json', headers: { 'x-schema-version': '1.0' } };
    await rawPublish(sys.amqpUrl, 'tweets', 'tweet.created', JSON.stringify(body), props);
    await rawPublish(sys.amqpUrl, 'tweets', 'tweet.created', JSON.stringify(body), props);
    await waitFor('the queue to drain', async () => (await sys.queueDepth('analytics.tweets')) === 0 && (await tweetCount(ada.id)) === before + 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(await tweetCount(ada.id)).to.equal(before + 1);
  });

  it('parks a malformed message from a raw client with its reason, and keeps consuming', async () => {
    await rawPublish(sys.amqpUrl, 'tweets', 'tweet.created', '{"this is": not json', {
      messageId: newId(),
      type: 'tweet.created',
      contentType: 'application/json',
    });
    await rawPublish(sys.amqpUrl, 'tweets', 'tweet.created', 'plain', { messageId: newId(), type: 'tweet.created', contentType: 'text/plain' });
    await rawPublish(sys.amqpUrl, 'tweets', 'tweet.exploded', '{}', { messageId: newId(), type: 'tweet.exploded', contentType: 'application/json' });
    await waitFor('three parked messages', async () => (await sys.queueDepth('analytics.tweets.dlq')) === 3);
    const parked = await peek(sys.amqpUrl, 'analytics.tweets.dlq', 3);
    const reasons = parked.map((m) => String(m.properties.headers?.['x-warren-error']));
    expect(reasons.join('\n'))
      .to.match(/not valid JSON/)
      .and.match(/content type/)
      .and.match(/unknown message type/);
    for (const m of parked) {
      expect(m.properties.headers?.['x-warren-error-kind']).to.equal('permanent');
      expect(m.properties.headers?.['x-warren-original-queue']).to.equal('analytics.tweets');
      expect(m.properties.headers?.['x-warren-original-exchange']).to.equal('tweets');
    }
    const res = await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'still alive' } });
    expect(res.status).to.equal(201);
    const before = await tweetCount(ada.id);
    await waitFor('the worker to keep counting', async () => (await tweetCount(ada.id)) >= before);
    await run(process.execPath, [cli, 'dlq', 'purge', 'analytics.tweets', '--yes'], { env: sys.env });
    expect(await sys.queueDepth('analytics.tweets.dlq')).to.equal(0);
  });

  it('lists, replays and processes a parked message with `warren dlq`', async () => {
    const before = await tweetCount(ada.id);
    const body = { tweetId: newId(), authorId: ada.id, authorHandle: 'ada', text: 'parked then replayed', createdAt: new Date().toISOString() };
    const messageId = newId();
    await rawPublish(sys.amqpUrl, 'warren.dlx', 'analytics.tweets', JSON.stringify(body), {
      messageId,
      type: 'tweet.created',
      contentType: 'application/json',
      // A parked message of unknown age is never replayed by default (its inbox record may be gone).
      timestamp: Math.floor(Date.now() / 1000),
      headers: {
        'x-schema-version': '1.0',
        'x-warren-error': 'Error: database busy',
        'x-warren-error-kind': 'exhausted',
        'x-warren-attempts': 2,
        'x-warren-original-queue': 'analytics.tweets',
      },
    });
    const listed = await run(process.execPath, [cli, 'dlq', 'list', 'analytics.tweets'], { env: sys.env });
    expect(listed.stdout).to.include(messageId).and.include('database busy');
    expect(await sys.queueDepth('analytics.tweets.dlq')).to.equal(1);
    await run(process.execPath, [cli, 'dlq', 'replay', 'analytics.tweets', '--all'], { env: sys.env });
    await waitFor('the replayed tweet to be counted', async () => (await tweetCount(ada.id)) === before + 1);
    expect(await sys.queueDepth('analytics.tweets.dlq')).to.equal(0);
  });
});
