import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { peek } from '../support/amqp';
import { lockAnalyticsStore } from '../support/locks';
import { TestSystem, TEST_DB, waitFor, type WarrenProcess } from '../support/system';

const run = promisify(execFile);
const cli = path.resolve(__dirname, '..', '..', 'src', 'cli.js');

describe(`retries with backoff, then the DLQ (${TEST_DB})`, function () {
  this.timeout(120_000);
  const sys = new TestSystem();
  let release: (() => Promise<void>) | undefined;
  let worker: WarrenProcess;

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(worker.tail(40));
  });

  before(async () => {
    // Two attempts (config/test.json), a short handler timeout so a blocked store fails fast
    // (on PostgreSQL the statement timeout, equal to it, may fire first).
    await sys.setUp({ worker: { handlerTimeoutMs: 1500 } });
    await sys.startApi();
    worker = await sys.startWorker('analytics', { WARREN_LOG_LEVEL: 'info' });
  });

  after(async () => {
    await release?.();
    await sys.tearDown();
  });

  it('retries a failing handler after the first delay step, parks it with its headers, and a replay applies it', async () => {
    const ada = await sys.createUser('ada_' + Date.now().toString(36).slice(-5));
    release = await lockAnalyticsStore(sys.config);
    const res = await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'blocked #store' } });
    expect(res.status).to.equal(201);

    await waitFor('the tweet to be parked', async () => (await sys.queueDepth('analytics.tweets.dlq')) === 1, 60_000, 250);
    const [parked] = await peek(sys.amqpUrl, 'analytics.tweets.dlq', 1);
    const h = parked!.properties.headers ?? {};
    expect(h['x-warren-error-kind']).to.equal('exhausted');
    expect(Number(h['x-warren-attempts'])).to.equal(2);
    expect(String(h['x-warren-error'])).to.match(/did not finish|SQLITE_BUSY|lock|statement timeout/i);
    expect(h['x-warren-original-queue']).to.equal('analytics.tweets');
    expect(h['x-warren-original-exchange']).to.equal('tweets');
    expect(h['x-warren-original-routing-key']).to.equal('tweet.created');
    const first = Date.parse(String(h['x-warren-first-failure']));
    const last = Date.parse(String(h['x-warren-last-failure']));
    expect(last - first, 'the second attempt waited for the 5 s delay step').to.be.at.least(4500);
    expect(parked!.properties.messageId).to.be.a('string');
    expect(parked!.properties.type).to.equal('tweet.created');
    expect(parked!.content.toString()).to.include('blocked #store');

    await release();
    release = undefined;
    await run(process.execPath, [cli, 'dlq', 'replay', 'analytics.tweets', '--all'], { env: sys.env });
    await waitFor('the replayed tweet to be counted', async () => (await sys.request('GET', `/analytics/users/${ada.id}`)).json?.tweetCount === 1, 20_000);
    expect(await sys.queueDepth('analytics.tweets.dlq')).to.equal(0);
  });
});
