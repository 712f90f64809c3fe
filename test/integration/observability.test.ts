import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { buildInfo } from '../../src/build';
import { projectRoot } from '../../src/config';
import { newId } from '../../src/domain/ids';
import { rawPublish } from '../support/amqp';
import { lockAnalyticsStore } from '../support/locks';
import { metricValue, parseMetrics } from '../support/metricsText';
import { freePort, TestSystem, TEST_DB, waitFor, type WarrenProcess } from '../support/system';

type Labels = Record<string, string>;

const { version } = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string };
/** The commit the worker is told it was built from (the API keeps what the test's environment says, `unknown` when nothing). */
const BUILT_FROM = '0123456789abcdef0123456789abcdef01234567';

/** Log lines of a process that are JSON objects (all of them, when stdout is not a terminal). */
function jsonLines(proc: WarrenProcess): Record<string, unknown>[] {
  return proc.output.flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });
}

/**
 * The real `warren api` and `warren worker analytics`: each serves its own
 * /metrics, and the series move with the traffic; one search for a request
 * id finds the API's line for the request and the worker's for its message.
 */
describe(`metrics and correlated logs of the real processes (${TEST_DB})`, function () {
  this.timeout(120_000);
  const sys = new TestSystem();
  let api: WarrenProcess;
  let worker: WarrenProcess;
  let workerPort = 0;
  let release: (() => Promise<void>) | undefined;
  let ada: { id: string; token: string };

  const apiMetrics = async (): Promise<string> => {
    const res = await fetch(`${sys.baseUrl}/metrics`);
    expect(res.status).to.equal(200);
    return res.text();
  };
  const workerMetrics = async (): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${workerPort}/metrics`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    return res.text();
  };
  const value = (text: string, name: string, labels: Labels = {}): number => metricValue(text, name, labels) ?? 0;
  const consumed = async (outcome: string): Promise<number> =>
    value(await workerMetrics(), 'warren_messages_consumed_total', { queue: 'analytics.tweets', outcome });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.log(`--- api\n${api.tail(20)}\n--- worker\n${worker.tail(20)}`);
  });

  before(async () => {
    // Debug: the worker's line for each handled message. A short handler timeout, so a locked store fails fast.
    await sys.setUp({ log: { level: 'debug' }, worker: { handlerTimeoutMs: 1500 } });
    api = await sys.startApi();
    workerPort = await freePort();
    worker = await sys.startWorker('analytics', { WARREN_WORKER_HEALTH_PORT: String(workerPort), WARREN_COMMIT: BUILT_FROM });
    ada = await sys.createUser('ada_' + Date.now().toString(36).slice(-5), 'Ada');
  });

  after(async () => {
    await release?.();
    await sys.tearDown();
  });

  let tweetRequestId = '';

  it('moves the API and worker series when a tweet is posted', async () => {
    const apiBefore = await apiMetrics();
    const res = await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'measured #Warren' } });
    expect(res.status).to.equal(201);
    tweetRequestId = res.headers.get('x-request-id') ?? '';
    expect(tweetRequestId).to.match(/^[0-9a-f-]{36}$/);

    await waitFor('the worker to apply the tweet', async () => (await consumed('applied')) === 1);
    const apiAfter = await waitFor('the relay to be done', async () => {
      const text = await apiMetrics();
      return value(text, 'warren_outbox_backlog') === 0 && value(text, 'warren_relay_rows_total', { outcome: 'sent' }) >= 2 ? text : undefined;
    });

    // The API: request durations by route pattern, publishes by exchange, confirms, relay lag.
    expect(value(apiAfter, 'warren_http_request_duration_seconds_count', { method: 'POST', route: '/tweets', status: '201', warren_service: 'api' })).to.equal(
      1,
    );
    expect(value(apiAfter, 'warren_http_request_duration_seconds_count', { method: 'POST', route: '/users', status: '201' })).to.equal(1);
    expect(value(apiAfter, 'warren_http_request_duration_seconds_bucket', { route: '/tweets', le: '+Inf' })).to.equal(1);
    expect(apiAfter).not.to.include(ada.id);
    expect(
      value(apiAfter, 'warren_messages_published_total', { exchange: 'tweets' }) - value(apiBefore, 'warren_messages_published_total', { exchange: 'tweets' }),
    ).to.equal(1);
    expect(value(apiAfter, 'warren_messages_published_total', { exchange: 'user.events' })).to.equal(1);
    expect(value(apiAfter, 'warren_publish_confirm_duration_seconds_count', { exchange: 'tweets' })).to.equal(1);
    expect(value(apiAfter, 'warren_publish_confirm_duration_seconds_sum', { exchange: 'tweets' })).to.be.greaterThan(0);
    expect(value(apiAfter, 'warren_publish_failures_total')).to.equal(0);
    expect(value(apiAfter, 'warren_relay_lag_seconds_count')).to.equal(2);
    expect(value(apiAfter, 'warren_relay_lag_seconds_sum')).to.be.greaterThan(0);
    expect(value(apiAfter, 'warren_relay_rows_total', { outcome: 'sent' })).to.equal(2);
    expect(value(apiAfter, 'warren_relay_up')).to.equal(1);
    expect(metricValue(apiAfter, 'warren_outbox_backlog')).to.equal(0);
    expect(value(apiAfter, 'warren_queue_consumers', { queue: 'analytics.tweets' })).to.equal(1);
    expect(metricValue(apiAfter, 'warren_queue_messages', { queue: 'analytics.tweets' })).to.equal(0);
    expect(value(apiAfter, 'process_cpu_user_seconds_total', { warren_service: 'api' })).to.be.greaterThan(0);
    expect(value(apiAfter, 'process_resident_memory_bytes', { warren_service: 'api' })).to.be.greaterThan(0);

    // The worker: its outcome, its handler's duration, that it consumes.
    const w = await workerMetrics();
    expect(value(w, 'warren_messages_consumed_total', { queue: 'analytics.tweets', outcome: 'applied', warren_service: 'worker-analytics' })).to.equal(1);
    expect(value(w, 'warren_handler_duration_seconds_count', { queue: 'analytics.tweets', result: 'ok' })).to.equal(1);
    expect(value(w, 'warren_handler_duration_seconds_sum', { queue: 'analytics.tweets', result: 'ok' })).to.be.greaterThan(0);
    expect(value(w, 'warren_consumer_consuming', { queue: 'analytics.tweets' })).to.equal(1);
    expect(value(w, 'warren_consumer_ready', { queue: 'analytics.tweets' })).to.equal(1);
    expect(value(w, 'warren_messages_redelivered_total', { queue: 'analytics.tweets' })).to.equal(0);
    expect(value(w, 'process_cpu_user_seconds_total', { warren_service: 'worker-analytics' })).to.be.greaterThan(0);
    expect(value(w, 'nodejs_heap_size_used_bytes', { warren_service: 'worker-analytics' })).to.be.greaterThan(0);

    // The build each runs, and no series under the label the Prometheus Operator owns.
    expect(metricValue(w, 'warren_build_info', { warren_service: 'worker-analytics', version, commit: BUILT_FROM })).to.equal(1);
    expect(metricValue(apiAfter, 'warren_build_info', { warren_service: 'api', version, commit: buildInfo(process.env).commit })).to.equal(1);
    for (const sample of [...parseMetrics(apiAfter), ...parseMetrics(w)]) expect(sample.labels, sample.name).to.not.have.property('service');
  });

  it('finds the API request line and the worker lines of its message with one search for the request id', async () => {
    const traceId = tweetRequestId.replace(/-/g, '');
    await waitFor('the worker line', () => worker.output.some((l) => l.includes(tweetRequestId)));
    const found = [...api.output, ...worker.output].filter((line) => line.includes(tweetRequestId)).map((line) => JSON.parse(line) as Record<string, unknown>);
    const apiLine = found.find((l) => l.service === 'api');
    expect(apiLine).to.include({ msg: 'request', method: 'POST', path: '/tweets', status: 201, requestId: tweetRequestId, traceId });
    const workerLines = found.filter((l) => l.service === 'worker-analytics');
    expect(workerLines).to.have.length.greaterThan(0);
    for (const line of workerLines) expect(line).to.include({ requestId: tweetRequestId, traceId });
    expect(workerLines.map((l) => l.msg)).to.include('handler finished');
  });

  it('counts duplicates, ignored and parked deliveries, and the park publish; the consumer logs them under their correlation id', async () => {
    const [applied, duplicate, ignored, parked] = [await consumed('applied'), await consumed('duplicate'), await consumed('ignored'), await consumed('parked')];
    const body = { tweetId: newId(), authorId: ada.id, authorHandle: 'ada', text: 'twice', createdAt: new Date().toISOString() };
    const props = {
      messageId: newId(),
      type: 'tweet.created',
      contentType: 'application/json',
      correlationId: 'twice-' + newId(),
      headers: { 'x-schema-version': '1.0' },
    };
    await rawPublish(sys.amqpUrl, 'tweets', 'tweet.created', JSON.stringify(body), props);
    await rawPublish(sys.amqpUrl, 'tweets', 'tweet.created', JSON.stringify(body), props);
    // A type the schema knows but analytics does not handle: acked and counted as ignored.
    await rawPublish(sys.amqpUrl, 'tweets', 'tweet.created', '{}', { messageId: newId(), type: 'user.created', contentType: 'application/json' });
    const parkId = 'park-' + newId();
    await rawPublish(sys.amqpUrl, 'tweets', 'tweet.created', '{"not": json', {
      messageId: newId(),
      type: 'tweet.created',
      contentType: 'application/json',
      correlationId: parkId,
    });

    await waitFor(
      'every delivery to settle',
      async () => (await consumed('parked')) === parked + 1 && (await consumed('duplicate')) === duplicate + 1 && (await consumed('ignored')) === ignored + 1,
    );
    const w = await workerMetrics();
    expect(value(w, 'warren_messages_consumed_total', { outcome: 'applied' })).to.equal(applied + 1);
    expect(value(w, 'warren_messages_published_total', { exchange: 'warren.dlx' })).to.equal(1);
    expect(value(w, 'warren_publish_confirm_duration_seconds_count', { exchange: 'warren.dlx' })).to.equal(1);
    expect(value(w, 'warren_messages_consumed_total', { outcome: 'stale' })).to.equal(0);

    const parkedLine = jsonLines(worker).find((l) => l.requestId === parkId);
    expect(parkedLine).to.include({ msg: 'message parked', kind: 'permanent' });
  });

  it('counts a retry with its delay-queue publish, and the retried message keeps its request id in every worker line', async () => {
    const retriedBefore = await consumed('retried');
    release = await lockAnalyticsStore(sys.config);
    const res = await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'blocked, then counted' } });
    expect(res.status).to.equal(201);
    const requestId = res.headers.get('x-request-id')!;
    await waitFor('the first attempt to be retried', async () => (await consumed('retried')) === retriedBefore + 1, 30_000, 200);
    await release();
    release = undefined;
    const w = await workerMetrics();
    expect(value(w, 'warren_messages_published_total', { exchange: 'warren.delay.5s' })).to.equal(1);

    await waitFor('the retry to be applied', async () => jsonLines(worker).some((l) => l.requestId === requestId && l.msg === 'handler finished'), 30_000, 250);
    const lines = jsonLines(worker).filter((l) => l.requestId === requestId);
    expect(lines.map((l) => l.msg)).to.include.members(['handler failed', 'retry scheduled', 'handler finished']);
    for (const line of lines) expect(line.traceId).to.equal(requestId.replace(/-/g, ''));
  });

  it('serves each supervised worker process its own /metrics, on the health port plus its index', async () => {
    const base = await freePort();
    const consumersBefore = await sys.consumers('analytics.tweets');
    const supervisor = sys.start(['worker', 'analytics', '--processes', '2'], { WARREN_WORKER_HEALTH_PORT: String(base) });
    await waitFor('both processes to consume', async () => (await sys.consumers('analytics.tweets')) === consumersBefore + 2, 30_000);
    for (const port of [base, base + 1]) {
      const text = await waitFor(`/metrics on ${port}`, async () => {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        return res.ok ? res.text() : undefined;
      });
      expect(metricValue(text, 'warren_consumer_consuming', { queue: 'analytics.tweets', warren_service: 'worker-analytics' })).to.equal(1);
      expect(metricValue(text, 'warren_messages_consumed_total', { queue: 'analytics.tweets', outcome: 'applied' })).to.equal(0);
    }
    expect(await supervisor.stop()).to.equal(0);
  });
});
