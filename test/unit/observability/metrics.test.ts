import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import type { Knex } from 'knex';
import type { Registry } from 'prom-client';
import { buildInfo } from '../../../src/build';
import { projectRoot } from '../../../src/config';
import type { WorkerDefinition } from '../../../src/consume/handler';
import type { WarrenMessage } from '../../../src/domain/messages';
import { createLogger, deliveryLogger } from '../../../src/log';
import { ConsumerMetrics, type ConsumerSource } from '../../../src/consume/metrics';
import { createRegistry, HttpMetrics, PublishMetrics, QueueMetrics, RelayMetrics, type RelaySource } from '../../../src/observability/metrics';
import { metricValue } from '../../support/metricsText';

function captureLog(): { lines: Record<string, unknown>[]; stream: Writable } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, stream };
}

const tweet: WarrenMessage<'tweet.created'> = {
  type: 'tweet.created',
  messageId: 'm-1',
  schemaVersion: '1.0',
  body: { tweetId: 't', authorId: 'a', authorHandle: 'ada', text: 'hi', createdAt: new Date(0).toISOString() },
};

describe('metrics', () => {
  let registry: Registry;
  beforeEach(() => {
    registry = createRegistry('unit');
  });

  it('labels every series with the service and adds process metrics only when asked', async () => {
    new PublishMetrics(registry).settled('tweets', 0.01);
    const text = await registry.metrics();
    expect(text).to.include('warren_messages_published_total{exchange="tweets",warren_service="unit"} 1');
    expect(text).not.to.include('process_cpu_user_seconds_total');
    const withProcess = await createRegistry('p', { processMetrics: true }).metrics();
    expect(withProcess).to.include('process_cpu_user_seconds_total{warren_service="p"}');
    expect(withProcess).to.include('nodejs_eventloop_lag_p99_seconds{warren_service="p"}');
  });

  it("says which build each process runs: package.json's version and the commit WARREN_COMMIT names, else unknown", async () => {
    const text = await createRegistry('api', { build: { version: '1.2.3', commit: 'abc1234' } }).metrics();
    expect(text).to.include('warren_build_info{version="1.2.3",commit="abc1234",warren_service="api"} 1');
    const { version } = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string };
    expect(buildInfo({ WARREN_COMMIT: ' 0123ABCdef4567 ' })).to.deep.equal({ version, commit: '0123abcdef4567' });
    expect(buildInfo({})).to.deep.equal({ version, commit: 'unknown' });
    // Only what git prints is a commit: nothing else gets into a label.
    expect(buildInfo({ WARREN_COMMIT: 'main; rm -rf' }).commit).to.equal('unknown');
    expect(await createRegistry('w').metrics()).to.match(/^warren_build_info\{version="[^"]+",commit="[^"]+",warren_service="w"\} 1$/m);
  });

  it('counts confirmed publishes by exchange with their confirm latency, and failures by reason', async () => {
    const publish = new PublishMetrics(registry);
    publish.settled('tweets', 0.003);
    publish.settled('tweets', 0.2);
    publish.settled('user.events', 0.004);
    publish.settled('tweets', 10, 'timeout');
    publish.settled('warren.dlx', 0, 'returned');
    const text = await registry.metrics();
    expect(metricValue(text, 'warren_messages_published_total', { exchange: 'tweets' })).to.equal(2);
    expect(metricValue(text, 'warren_messages_published_total', { exchange: 'user.events' })).to.equal(1);
    expect(metricValue(text, 'warren_publish_failures_total', { exchange: 'tweets', reason: 'timeout' })).to.equal(1);
    expect(metricValue(text, 'warren_publish_failures_total', { exchange: 'warren.dlx', reason: 'returned' })).to.equal(1);
    expect(metricValue(text, 'warren_publish_confirm_duration_seconds_count', { exchange: 'tweets' })).to.equal(2);
    expect(metricValue(text, 'warren_publish_confirm_duration_seconds_bucket', { le: '0.005', exchange: 'tweets' })).to.equal(1);
    expect(metricValue(text, 'warren_publish_confirm_duration_seconds_sum', { exchange: 'tweets' })).to.be.closeTo(0.203, 1e-9);
  });

  it("reads the relay's backlog, health and row counts when scraped, and observes lag only for confirmed rows", async () => {
    const relayMetrics = new RelayMetrics(registry);
    const relay: RelaySource & { backlog: number; ok: boolean; counts: { sent: number; failed: number } } = {
      backlog: 7,
      ok: true,
      counts: { sent: 3, failed: 1 },
      pending() {
        return this.backlog;
      },
      status() {
        return { ok: this.ok };
      },
    };
    relayMetrics.watch(relay);
    const now = 1_000_000;
    relayMetrics.published([{ created_at: now - 40 }, { created_at: String(now - 2_000) }, { created_at: now - 10 }], [null, null, new Error('returned')], now);
    let text = await registry.metrics();
    expect(metricValue(text, 'warren_outbox_backlog')).to.equal(7);
    expect(metricValue(text, 'warren_relay_up')).to.equal(1);
    expect(metricValue(text, 'warren_relay_rows_total', { outcome: 'sent' })).to.equal(3);
    expect(metricValue(text, 'warren_relay_rows_total', { outcome: 'failed' })).to.equal(1);
    expect(metricValue(text, 'warren_relay_lag_seconds_count')).to.equal(2);
    expect(metricValue(text, 'warren_relay_lag_seconds_bucket', { le: '0.05' })).to.equal(1);
    expect(metricValue(text, 'warren_relay_lag_seconds_sum')).to.be.closeTo(2.04, 1e-9);

    relay.backlog = 0;
    relay.ok = false;
    relay.counts.sent = 10;
    text = await registry.metrics();
    expect(metricValue(text, 'warren_outbox_backlog')).to.equal(0);
    expect(metricValue(text, 'warren_relay_up')).to.equal(0);
    expect(metricValue(text, 'warren_relay_rows_total', { outcome: 'sent' })).to.equal(10);
  });

  it("mirrors the consumer's counts by queue and outcome, and whether it consumes", async () => {
    const consumerMetrics = new ConsumerMetrics(registry);
    const consumer: ConsumerSource & { state: { consuming: boolean; ready: boolean }; counts: Record<string, number> } = {
      counts: { applied: 5, duplicate: 1, ignored: 2, retried: 3, parked: 1, stale: 0, redelivered: 4 },
      state: { consuming: true, ready: false },
      status() {
        return this.state;
      },
    };
    consumerMetrics.watch('analytics.tweets', consumer);
    let text = await registry.metrics();
    const consumed = (outcome: string) => metricValue(text, 'warren_messages_consumed_total', { queue: 'analytics.tweets', outcome });
    expect([consumed('applied'), consumed('duplicate'), consumed('ignored'), consumed('retried'), consumed('parked'), consumed('stale')]).to.deep.equal([
      5, 1, 2, 3, 1, 0,
    ]);
    expect(metricValue(text, 'warren_messages_redelivered_total', { queue: 'analytics.tweets' })).to.equal(4);
    expect(metricValue(text, 'warren_consumer_consuming', { queue: 'analytics.tweets' })).to.equal(1);
    expect(metricValue(text, 'warren_consumer_ready', { queue: 'analytics.tweets' })).to.equal(0);

    consumer.counts.applied = 6;
    consumer.state = { consuming: false, ready: false };
    text = await registry.metrics();
    expect(consumed('applied')).to.equal(6);
    expect(metricValue(text, 'warren_consumer_consuming', { queue: 'analytics.tweets' })).to.equal(0);
  });

  it("times the handler by queue and result, and logs its end with the delivery's request id", async () => {
    const consumerMetrics = new ConsumerMetrics(registry);
    let fail = false;
    const worker: WorkerDefinition<'tweet.created'> = {
      name: 'analytics',
      queue: 'analytics.tweets',
      bindings: [],
      handles: ['tweet.created'],
      handle: async () => {
        await new Promise((r) => setTimeout(r, 5));
        if (fail) throw new Error('database away');
      },
    };
    const timed = consumerMetrics.timed(worker);
    expect(timed.queue).to.equal('analytics.tweets');
    const { lines, stream } = captureLog();
    const log = deliveryLogger(createLogger('worker-analytics', 'debug', stream), {
      correlationId: 'req-42',
      headers: { traceparent: Buffer.from('00-0123456789abcdef0123456789abcdef-0123456789abcdef-01') },
    });
    const tx = {} as Knex.Transaction; // the handler under test touches no database
    await timed.handle(tweet, tx, { log, now: () => new Date(), afterCommit: () => undefined, signal: new AbortController().signal });
    fail = true;
    let thrown: unknown;
    await timed
      .handle(tweet, tx, { log, now: () => new Date(), afterCommit: () => undefined, signal: new AbortController().signal })
      .catch((err: unknown) => (thrown = err));
    expect((thrown as Error).message).to.equal('database away');

    const text = await registry.metrics();
    expect(metricValue(text, 'warren_handler_duration_seconds_count', { queue: 'analytics.tweets', result: 'ok' })).to.equal(1);
    expect(metricValue(text, 'warren_handler_duration_seconds_count', { queue: 'analytics.tweets', result: 'error' })).to.equal(1);
    expect(metricValue(text, 'warren_handler_duration_seconds_sum', { queue: 'analytics.tweets', result: 'ok' })).to.be.greaterThan(0.004);
    expect(lines).to.have.length(1);
    expect(lines[0]).to.include({
      msg: 'handler finished',
      requestId: 'req-42',
      traceId: '0123456789abcdef0123456789abcdef',
      messageId: 'm-1',
      queue: 'analytics.tweets',
    });
  });

  it("reports the broker's queue depth and consumers from one probe per scrape", async () => {
    let probes = 0;
    new QueueMetrics(registry, async () => {
      probes++;
      return [
        { queue: 'analytics.tweets', ok: true, messages: 12, consumers: 3 },
        { queue: 'notifications.user-events', ok: false },
      ];
    });
    const text = await registry.metrics();
    expect(probes).to.equal(1);
    expect(metricValue(text, 'warren_queue_messages', { queue: 'analytics.tweets' })).to.equal(12);
    expect(metricValue(text, 'warren_queue_consumers', { queue: 'analytics.tweets' })).to.equal(3);
    expect(text).not.to.include('queue="notifications.user-events"');
  });

  it('records a request under its method, route and status', async () => {
    new HttpMetrics(registry).observe('GET', '/users/:id', 404, 0.002);
    const text = await registry.metrics();
    expect(metricValue(text, 'warren_http_request_duration_seconds_count', { method: 'GET', route: '/users/:id', status: '404' })).to.equal(1);
  });
});
