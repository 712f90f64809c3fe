import http from 'node:http';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-node';
import { createApp } from '../../src/api/app';
import type { TimelineSource } from '../../src/api/timelineClient';
import { connectBroker, type BrokerConnection } from '../../src/broker/connection';
import { ConfirmPublisher } from '../../src/broker/publisher';
import { openDatabase } from '../../src/db/knex';
import { createLogger } from '../../src/log';
import { OUTBOX_TABLE } from '../../src/outbox/store';
import { OutboxRelay } from '../../src/outbox/relay';
import { parseTraceparent } from '../../src/observability/traceContext';
import { startSdk, type Tracing } from '../../src/observability/tracing';
import { loadDefinitions, retargetDefinitions } from '../../src/topology/definitions';
import { analyticsWorker } from '../../src/workers/analytics';
import { wireWorker } from '../../src/workers/wiring';
import { TestSystem, TEST_DB, waitFor } from '../support/system';

/**
 * OpenTelemetry across the system: the API (its app and its outbox relay)
 * and the analytics worker, in this process as `warren api` and `warren
 * worker analytics` wire them, against the real broker and database, their
 * spans caught by the SDK's in-memory exporter. One `POST /tweets` is one
 * trace, from the caller's span to the analytics handler.
 */
const CALLER_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CALLER_SPAN = 'b7ad6b7169203331';
const TRACESTATE = 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7';

describe(`tracing from the HTTP request to the worker's handler (${TEST_DB})`, function () {
  this.timeout(120_000);
  const sys = new TestSystem();
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;
  let server: http.Server | undefined;
  let relay: OutboxRelay | undefined;
  const closers: (() => Promise<unknown>)[] = [];
  let apiDb: Knex;
  let writeDb: Knex;
  let connection: BrokerConnection;
  let publisher: ConfirmPublisher;
  const log = createLogger('tracing-test', process.env.WARREN_TEST_LOG_LEVEL ?? 'silent');

  const newRelay = () =>
    new OutboxRelay({
      db: writeDb,
      publisher,
      log,
      batchSize: 100,
      pollIntervalMs: 100,
      claimTimeoutMs: sys.config.relay.claimTimeoutMs,
      retainSentMs: 3_600_000,
      tracing,
    });

  before(async () => {
    await sys.setUp();
    tracing = startSdk({ serviceName: 'warren-tracing-test', spanProcessor: new SimpleSpanProcessor(exporter) });
    const common = { url: sys.amqpUrl, service: 'tracing-test', heartbeatSeconds: 10, reconnectSeconds: 1, log };

    apiDb = openDatabase(sys.config, 'api', { attachReadModels: true });
    writeDb = openDatabase(sys.config, 'api');
    connection = connectBroker({ ...common, role: 'publish' });
    publisher = new ConfirmPublisher(connection, log, 5000);
    const timeline: TimelineSource = {
      page: () => Promise.reject(new Error('no timeline service in this test')),
      close: () => Promise.resolve(),
    };
    const app = createApp({
      config: sys.config,
      db: apiDb,
      writeDb,
      log,
      timeline,
      onEventsWritten: () => relay?.wake(),
      outboxBacklog: () => 0,
      readiness: () => Promise.resolve([]),
      tracing,
    });
    const handle = app.callback();
    server = http.createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => server!.listen(sys.port, '127.0.0.1', resolve));

    const defs = retargetDefinitions(loadDefinitions(sys.config.amqp.definitionsFile), sys.vhost);
    const workerDb = openDatabase(sys.config, 'analytics');
    const consumeConnection = connectBroker({ ...common, role: 'consume' });
    const publishConnection = connectBroker({ ...common, role: 'publish' });
    const { consumer, close } = wireWorker(analyticsWorker, { config: sys.config, defs, consumeConnection, publishConnection, db: workerDb, log, tracing });
    closers.push(
      () => consumer.stop(5000),
      () => close(),
      () => consumeConnection.close(),
      () => publishConnection.close(),
      () => workerDb.destroy(),
    );
    await waitFor('the analytics consumer to subscribe', () => consumer.status().consuming, 20_000);
  });

  after(async () => {
    await relay?.stop();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    for (const close of closers) await close().catch(() => undefined);
    await publisher?.close().catch(() => undefined);
    await connection?.close().catch(() => undefined);
    await Promise.all([apiDb?.destroy(), writeDb?.destroy()]);
    await tracing?.shutdown();
    await sys.tearDown();
  });

  beforeEach(() => exporter.reset());

  const spanId = (s: ReadableSpan) => s.spanContext().spanId;
  const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

  /** The spans of one trace, once its handler span has ended. */
  async function traceOf(traceId: string): Promise<ReadableSpan[]> {
    const ofTrace = () => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    await waitFor('the handler span', () => ofTrace().some((s) => s.name === 'analytics handler'), 30_000);
    // The consumer span ends with the ack, just after the handler's transaction.
    await waitFor('the consumer span', () => ofTrace().some((s) => s.name === 'process analytics.tweets'), 10_000);
    return ofTrace();
  }

  function byName(spans: ReadableSpan[], name: string): ReadableSpan {
    const found = spans.filter((s) => s.name === name);
    expect(found, `spans named ${name} in ${spans.map((s) => s.name).join(', ')}`).to.have.length(1);
    return found[0]!;
  }

  async function postTweet(text: string, flags = '01'): Promise<{ id: string; authorId: string }> {
    const author = await sys.createUser(`tr_${Math.random().toString(36).slice(2, 10)}`);
    exporter.reset();
    const res = await sys.request('POST', '/tweets', {
      token: author.token,
      body: { text },
      headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-${flags}`, tracestate: TRACESTATE },
    });
    expect(res.status, res.text).to.equal(201);
    return { id: res.json.id as string, authorId: author.id };
  }

  /** POST /tweets > outbox write > publish tweets > process analytics.tweets > analytics handler, each the child of the one before. */
  function expectOneChain(spans: ReadableSpan[]): void {
    const server = byName(spans, 'POST /tweets');
    const write = byName(spans, 'outbox write');
    const publish = byName(spans, 'publish tweets');
    const consume = byName(spans, 'process analytics.tweets');
    const handler = byName(spans, 'analytics handler');
    expect(parentOf(server), "the server span's parent is the caller's span").to.equal(CALLER_SPAN);
    expect(server.parentSpanContext?.isRemote).to.equal(true);
    expect(parentOf(write)).to.equal(spanId(server));
    expect(parentOf(publish), "the relay's publish is the child of the outbox write, read back from the row").to.equal(spanId(write));
    expect(parentOf(consume), "the consumer span's parent is the producer span, from the message's headers").to.equal(spanId(publish));
    expect(parentOf(handler)).to.equal(spanId(consume));
    for (const s of [server, write, publish, consume, handler]) {
      expect(s.spanContext().traceId, s.name).to.equal(CALLER_TRACE);
      expect(s.spanContext().traceState?.serialize(), `${s.name} carries the caller's tracestate`).to.equal(TRACESTATE);
    }
    expect(new Set(spans.map((s) => s.spanContext().traceId))).to.deep.equal(new Set([CALLER_TRACE]));
    // Kinds as OpenTelemetry's semantic conventions have them: 0 internal, 1 server, 3 producer, 4 consumer.
    expect([server, write, publish, consume, handler].map((s) => s.kind)).to.deep.equal([1, 0, 3, 4, 0]);
    expect(server.attributes).to.include({ 'http.request.method': 'POST', 'http.route': '/tweets', 'http.response.status_code': 201 });
    expect(publish.attributes).to.include({ 'messaging.system': 'rabbitmq', 'messaging.destination.name': 'tweets', 'warren.message.type': 'tweet.created' });
    expect(consume.attributes).to.include({ 'messaging.destination.name': 'analytics.tweets', 'warren.outcome': 'applied' });
  }

  it("is one trace from POST /tweets to the analytics handler, continuing the caller's trace and tracestate", async () => {
    relay = newRelay();
    relay.start();
    await postTweet('traced #otel');
    const spans = await traceOf(CALLER_TRACE);
    expectOneChain(spans);
    await relay.stop();
    relay = undefined;
  });

  it('continues the trace from the outbox row when the relay that sends it started after the write (a restart)', async () => {
    // No relay runs while the tweet is written: the event waits in the outbox with its context.
    const tweet = await postTweet('written while no relay runs #otel');
    await tracing.flush();
    const written = exporter.getFinishedSpans();
    const write = byName(written, 'outbox write');
    const row = (await writeDb(OUTBOX_TABLE).whereNull('sent_at').andWhere('payload', 'like', `%${tweet.id}%`).first()) as
      { traceparent: string; tracestate: string | null } | undefined;
    expect(row, 'the unsent outbox row').to.not.equal(undefined);
    expect(parseTraceparent(row!.traceparent)).to.deep.equal({ traceId: CALLER_TRACE, spanId: spanId(write), flags: 1 });
    expect(row!.tracestate).to.equal(TRACESTATE);

    relay = newRelay();
    relay.start();
    const spans = await traceOf(CALLER_TRACE);
    expectOneChain(spans);
    await relay.stop();
    relay = undefined;
  });

  it('records nothing of a trace its caller did not sample, and passes that decision on rather than claim a sampled flag', async () => {
    relay = newRelay();
    relay.start();
    const tweet = await postTweet('not sampled #otel', '00');
    await waitFor(
      'the analytics worker to count it',
      async () => (await sys.request('GET', `/analytics/users/${tweet.authorId}`)).json?.tweetCount === 1,
      30_000,
    );
    await relay.stop();
    relay = undefined;
    await tracing.flush();
    expect(exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === CALLER_TRACE)).to.deep.equal([]);
    const row = (await writeDb(OUTBOX_TABLE).whereNotNull('sent_at').andWhere('payload', 'like', `%${tweet.id}%`).first()) as
      { traceparent: string; tracestate: string | null } | undefined;
    const stored = parseTraceparent(row?.traceparent);
    expect(stored?.traceId).to.equal(CALLER_TRACE);
    expect(stored?.flags, 'not sampled, as the parent-based sampler decided').to.equal(0);
    expect(stored?.spanId).to.not.equal(CALLER_SPAN);
    expect(row?.tracestate).to.equal(TRACESTATE);
  });
});
