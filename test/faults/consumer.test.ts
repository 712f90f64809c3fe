import { spawn } from 'node:child_process';
import path from 'node:path';
import amqplib from 'amqplib';
import { expect } from 'chai';
import sinon from 'sinon';
import { newId } from '../../src/domain/ids';
import { analyticsHandler } from '../../src/workers/analytics';
import { peek, rawPublish } from '../support/amqp';
import { consumerTimeout, setConsumerTimeout } from '../support/broker';
import { lockAnalyticsStore } from '../support/locks';
import { freePort, TestSystem, TEST_DB, waitFor, WarrenProcess } from '../support/system';
import { Gate, InProcessWorker } from './fixtures/inProcessWorker';
import { AnalyticsBooks, publishTweets } from './fixtures/tweets';

/**
 * The consumer under faults ("Nothing lost, nothing doubled", scenarios
 * 10, 11, 12, 15a, 15b, 16): each against the real RabbitMQ in a vhost of its
 * own. Scenarios that need a handler to block or hang at a chosen moment
 * run QueueConsumer in-process with a handler the test controls; the
 * others run the real `warren worker` (with its health endpoint) or, for a
 * message that crashes the process, a test-only worker script
 * (fixtures/crashWorker.ts).
 */
const QUEUE = 'analytics.tweets';
const DLQ = 'analytics.tweets.dlq';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const figures = (scenario: string, f: Record<string, unknown>) => console.log(`      ${scenario}: ${JSON.stringify(f)}`);

describe(`faults: the consumer (${TEST_DB})`, function () {
  this.timeout(300_000);
  const systems: TestSystem[] = [];
  const inProcess: InProcessWorker[] = [];
  const books: AnalyticsBooks[] = [];

  async function system(extraConfig: Record<string, unknown> = {}): Promise<{ sys: TestSystem; books: AnalyticsBooks }> {
    const sys = new TestSystem();
    systems.push(sys);
    await sys.setUp(extraConfig);
    const b = new AnalyticsBooks(sys.config);
    books.push(b);
    return { sys, books: b };
  }

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') for (const sys of systems) for (const p of sys.processes) console.log(`--- ${p.name}\n${p.tail(40)}`);
    sinon.restore();
    await Promise.all(inProcess.splice(0).map((w) => w.stop()));
    await Promise.all(books.splice(0).map((b) => b.close()));
    await Promise.all(systems.splice(0).map((s) => s.tearDown()));
  });

  it('10. a reconnect while a handler runs: its stale ack acks nothing on the new channel, where another message has its delivery tag', async () => {
    const { sys, books } = await system();
    const gates: Record<string, Gate> = { A: new Gate(), B: new Gate() };
    const entered: string[] = [];
    const w = new InProcessWorker(
      sys,
      'faults stale-ack',
      async (m, tx) => {
        entered.push(m.body.text);
        await gates[m.body.text]?.opened;
        await analyticsHandler(m, tx);
      },
      // Reconnects 2 s after losing its connection: time for the test to take A away.
      { prefetch: 10, handlerTimeoutMs: 60_000, reconnectSeconds: 2 },
    );
    inProcess.push(w);
    await waitFor('the consumer to subscribe', () => w.consumer.status().consuming);

    const [a] = await publishTweets(sys.amqpUrl, ['A']);
    await waitFor("A's handler to start", () => entered.includes('A'));
    const first = w.deliveries[0]!;
    expect(first.tag, "A's delivery tag on the first channel").to.equal(1);
    const ch1 = first.ch;
    const ch1Ack = sinon.spy(ch1, 'ack');

    // The broker drops the consumer's connection while A's handler still runs; A goes back to the queue.
    const holder = await amqplib.connect(sys.amqpUrl);
    const holderChannel = await holder.createChannel();
    const conn = await waitFor('the consumer connection to be listed', async () =>
      (await sys.management.listConnections(sys.vhost)).find((c) => c.client_properties?.connection_name === w.connectionName),
    );
    await sys.management.closeConnection(conn.name, 'fault test: connection lost while a handler runs');
    // Take A away until the consumer is back, so that B, not A, is the first delivery (tag 1) of the new channel.
    const heldA = await waitFor('A to be requeued', async () => (await holderChannel.get(QUEUE, { noAck: false })) || undefined, 1500, 10);
    expect(heldA.properties.messageId).to.equal(a!.messageId);
    expect(heldA.fields.redelivered).to.equal(true);

    const [b] = await publishTweets(sys.amqpUrl, ['B']);
    const deliveredB = await waitFor('B to arrive on the new channel', () => w.deliveries.find((d) => d.text === 'B'), 15_000, 20);
    expect(deliveredB.ch, 'B came on a new channel').to.not.equal(ch1);
    expect(deliveredB.tag, "B's delivery tag: the same number A had").to.equal(1);
    expect(w.consumer.counts, "A's first handler is still running").to.include({ applied: 0, stale: 0 });
    const ch2 = deliveredB.ch;
    const ch2Ack = sinon.spy(ch2, 'ack');
    let ch2Closed = false;
    ch2.on('close', () => (ch2Closed = true));

    // A's old handler finishes: its effect commits, its ack (tag 1 of a dead channel) is stale.
    gates.A!.open();
    await waitFor('the stale ack to be counted', () => w.consumer.counts.stale === 1);
    expect(ch1Ack.callCount, 'nothing sent to the dead channel').to.equal(0);
    expect(ch2Ack.callCount, 'nothing acked on the new channel: B (tag 1) is untouched').to.equal(0);
    expect(await books.tweetCount(a!.authorId), 'A applied by its first handler').to.equal(1);

    // B runs now and is acked under its own tag; a second ack of tag 1 would have closed ch2 (406 unknown delivery tag).
    await waitFor("B's handler to start", () => entered.includes('B'));
    expect(ch2Ack.callCount).to.equal(0);
    gates.B!.open();
    await waitFor('B to be applied', () => w.consumer.counts.applied === 2);
    expect(ch2Ack.callCount).to.equal(1);
    expect(ch2Ack.firstCall.args[0].fields.deliveryTag).to.equal(1);
    expect(ch2Ack.firstCall.args[0].properties.messageId).to.equal(b!.messageId);

    // A comes back: a duplicate (its inbox record committed with its effect), acked without applying it again.
    await holderChannel.close();
    await holder.close();
    await waitFor('A to be redelivered and acked as a duplicate', () => w.consumer.counts.duplicate === 1);
    await sleep(300); // a 406 for a bad ack would close the channel about now
    expect(ch2Ack.callCount).to.equal(2);
    expect(ch2Ack.secondCall.args[0].fields.deliveryTag).to.equal(2);
    expect(ch2Ack.secondCall.args[0].properties.messageId).to.equal(a!.messageId);
    expect(ch2Closed, 'the new channel stayed open').to.equal(false);
    expect(w.consumer.counts).to.include({ applied: 2, duplicate: 1, stale: 1, retried: 0, parked: 0 });
    expect(await books.tweetCount(a!.authorId), 'A applied once').to.equal(1);
    expect(await books.tweetCount(b!.authorId), 'B applied once').to.equal(1);
    expect(await books.applied()).to.equal(2);

    await w.stop();
    expect(await sys.queueDepth(QUEUE), 'nothing left unacked (it would be back in the queue now)').to.equal(0);
    expect(await sys.queueDepth(DLQ)).to.equal(0);
    figures('10', {
      deliveries: w.deliveries.map((d) => `${d.text}@${d.ch === ch1 ? 'ch1' : 'ch2'}#${d.tag}${d.redelivered ? ' redelivered' : ''}`),
      counts: w.consumer.counts,
    });
  });

  it('11. a hanging handler is abandoned after handlerTimeoutMs, retried through the delay queue, and applied once it stops hanging', async () => {
    const { sys, books } = await system();
    const released = new Gate();
    let hanging = true;
    let hangCalls = 0;
    let lateError = '';
    const w = new InProcessWorker(
      sys,
      'faults hang',
      async (m, tx) => {
        if (m.body.text === 'hang') {
          hangCalls++;
          if (hanging) {
            await released.opened;
            try {
              await analyticsHandler(m, tx); // the abandoned handler's late write: its transaction is gone
            } catch (err) {
              lateError = (err as Error).message;
            }
            return;
          }
        }
        await analyticsHandler(m, tx);
      },
      { prefetch: 10, handlerTimeoutMs: 500 },
    );
    inProcess.push(w);
    await waitFor('the consumer to subscribe', () => w.consumer.status().consuming);

    const started = Date.now();
    const [h, n] = await publishTweets(sys.amqpUrl, ['hang', 'next']);
    await waitFor('the hanging message to be retried', () => w.consumer.counts.retried === 1, 10_000, 20);
    const abandonedAfterMs = Date.now() - started;
    await waitFor('the next message to be applied meanwhile', () => w.consumer.counts.applied === 1);
    expect(await books.tweetCount(n!.authorId)).to.equal(1);
    const [copy] = await peek(sys.amqpUrl, 'warren.delay.5s', 1);
    expect(copy?.properties.messageId, 'the retry copy waits in the first delay step').to.equal(h!.messageId);
    expect(Number(copy!.properties.headers?.['x-warren-attempts'])).to.equal(1);
    expect(String(copy!.properties.headers?.['x-warren-error'])).to.match(/did not finish within 500 ms/);

    // The handler stops hanging: the abandoned run wakes up and can write nothing; the retry applies it.
    hanging = false;
    released.open();
    await waitFor('the retry to be applied', () => w.consumer.counts.applied === 2, 20_000, 50);
    const appliedAfterMs = Date.now() - started;
    expect(lateError, "the abandoned run's transaction was rolled back").to.match(/Transaction query already complete|transaction/i);
    expect(hangCalls).to.equal(2);
    expect(await books.tweetCount(h!.authorId), 'applied once').to.equal(1);
    expect(await books.applied()).to.equal(2);
    const channels = new Set(w.deliveries.map((d) => d.ch));
    expect(channels.size, 'every delivery on one channel: the broker closed none').to.equal(1);
    expect(w.consumer.counts).to.include({ applied: 2, retried: 1, stale: 0, parked: 0 });

    await w.stop();
    expect(await sys.queueDepth(QUEUE)).to.equal(0);
    expect(await sys.queueDepth('warren.delay.5s')).to.equal(0);
    expect(await sys.queueDepth(DLQ)).to.equal(0);
    figures('11', { abandonedAfterMs, appliedAfterMs, handlerCalls: hangCalls, lateError, counts: w.consumer.counts });
  });

  async function probe(
    port: number,
    route: '/readyz' | '/healthz',
  ): Promise<{ status: number; body: { status: string; consuming?: boolean; detail?: string } }> {
    const res = await fetch(`http://127.0.0.1:${port}${route}`);
    return { status: res.status, body: (await res.json()) as { status: string; consuming?: boolean; detail?: string } };
  }

  it('12. the queue deleted and re-created by an operator: not ready while it is missing, re-subscribed and re-bound once it is back', async () => {
    const healthPort = await freePort();
    const { sys, books } = await system({ worker: { healthPort } });
    const worker = await sys.startWorker('analytics', { WARREN_LOG_LEVEL: 'info' });
    await waitFor('the worker to be ready', async () => (await probe(healthPort, '/readyz')).status === 200);
    expect((await probe(healthPort, '/healthz')).status).to.equal(200);
    await publishTweets(sys.amqpUrl, ['before the delete']);
    await waitFor('the first tweet to be applied', async () => (await books.applied()) === 1);

    await sys.management.deleteQueue(sys.vhost, QUEUE);
    const deletedAt = Date.now();
    const missing = await waitFor('readyz to answer 503', async () => {
      const r = await probe(healthPort, '/readyz');
      return r.status === 503 ? r : undefined;
    });
    const notReadyAfterMs = Date.now() - deletedAt;
    expect(missing.body.consuming).to.equal(false);
    expect(missing.body.detail).to.match(/not consuming analytics\.tweets/);
    await sleep(3000);
    const stillMissing = await probe(healthPort, '/readyz');
    expect(stillMissing.status, 'still not ready while the queue is missing').to.equal(503);
    expect(stillMissing.body.detail)
      .to.match(/cancelled by the broker/)
      .and.to.match(/NOT.FOUND|no queue/);
    expect(worker.running).to.equal(true);

    // The operator re-creates the queue alone, without its bindings.
    await sys.management.putQueue(sys.vhost, QUEUE, { durable: true, auto_delete: false, arguments: { 'x-queue-type': 'quorum' } });
    const recreatedAt = Date.now();
    await waitFor('readyz to answer 200 again', async () => (await probe(healthPort, '/readyz')).status === 200, 15_000, 50);
    const readyAgainAfterMs = Date.now() - recreatedAt;
    expect(await sys.consumers(QUEUE)).to.equal(1);
    const bindings = await sys.management.queueBindings(sys.vhost, QUEUE);
    expect(
      bindings.some((b) => b.source === 'tweets' && b.routing_key === 'tweet.*'),
      're-bound to tweets',
    ).to.equal(true);
    expect(
      bindings.some((b) => b.source === 'warren.return' && b.routing_key === QUEUE),
      'the retry route re-bound',
    ).to.equal(true);

    const [after] = await publishTweets(sys.amqpUrl, ['after the re-create']);
    await waitFor('the tweet published after the re-create to be applied', async () => (await books.tweetCount(after!.authorId)) === 1);
    expect(await books.applied()).to.equal(2);
    expect(worker.output.some((l) => l.includes('consumer cancelled by the broker'))).to.equal(true);
    figures('12', {
      notReadyAfterMs,
      detailWhileMissing: stillMissing.body.detail,
      readyAgainAfterMs,
      bindings: bindings.map((b) => `${b.source || '(default)'}:${b.routing_key}`),
    });
  });

  /** Publishes to `exchange` until the broker refuses (a quorum queue's length limit is soft); returns how many it took. */
  async function fillUntilRefused(url: string, exchange: string, routingKey: string): Promise<number> {
    const conn = await amqplib.connect(url);
    try {
      const ch = await conn.createConfirmChannel();
      for (let i = 0; i < 50; i++) {
        const props = { persistent: true, mandatory: true, messageId: `filler-${i}`, contentType: 'application/json', type: 'tweet.created' };
        const ok = await new Promise<boolean>((resolve) => ch.publish(exchange, routingKey, Buffer.from('{}'), props, (err) => resolve(!err)));
        if (!ok) return i;
      }
      throw new Error(`${exchange} -> ${routingKey} took 50 messages without refusing`);
    } finally {
      await conn.close();
    }
  }

  it('15a. a full DLQ refuses a park: the original stays unacked and the worker not ready, until the DLQ takes it', async () => {
    const healthPort = await freePort();
    const { sys, books } = await system({ worker: { healthPort } });
    const worker = await sys.startWorker('analytics', { WARREN_LOG_LEVEL: 'info' });
    await waitFor('the worker to be ready', async () => (await probe(healthPort, '/readyz')).status === 200);

    // A policy above warren.dlq (priority 10): what it sets, plus a limit of one message.
    const dlqPolicy = { 'max-length-bytes': 1073741824, overflow: 'reject-publish', 'queue-leader-locator': 'balanced', 'max-length': 1 };
    await sys.management.putPolicy(sys.vhost, 'test.dlq-full', {
      pattern: '^analytics\\.tweets\\.dlq$',
      'apply-to': 'queues',
      priority: 100,
      definition: dlqPolicy,
    });
    await waitFor(
      'the DLQ to take the tiny limit',
      async () => (await sys.management.getQueue(sys.vhost, DLQ))?.effective_policy_definition?.['max-length'] === 1,
      20_000,
      250,
    );
    const fillers = await fillUntilRefused(sys.amqpUrl, 'warren.dlx', QUEUE);

    // A message that can never be processed: parked at once, or it would be, were the DLQ not full.
    const poisonId = newId();
    await rawPublish(sys.amqpUrl, 'tweets', 'tweet.created', '{"not":"a tweet"}', {
      messageId: poisonId,
      type: 'tweet.created',
      contentType: 'application/json',
    });
    const refused = await waitFor('readyz to answer 503', async () => {
      const r = await probe(healthPort, '/readyz');
      return r.status === 503 ? r : undefined;
    });
    expect(refused.body.consuming).to.equal(true);
    expect(refused.body.detail)
      .to.match(/cannot retry or park/)
      .and.to.match(/nacked/);
    expect(await sys.queueDepth(QUEUE), 'nothing ready: the original is held').to.equal(0);
    await waitFor('the original to show as unacked', async () => (await sys.management.getQueue(sys.vhost, QUEUE))?.messages_unacknowledged === 1, 20_000, 500);
    expect(await sys.queueDepth(DLQ)).to.equal(fillers);

    // The worker keeps applying what it can meanwhile.
    const [fine] = await publishTweets(sys.amqpUrl, ['fine while the DLQ is full']);
    await waitFor('a good tweet to be applied meanwhile', async () => (await books.tweetCount(fine!.authorId)) === 1);
    expect((await probe(healthPort, '/readyz')).status).to.equal(503);

    // The worker dies holding it: the original is back in the queue, not lost; the next worker gets it
    // as a redelivery (run alone, on a one-at-a-time subscription), is refused again, and does not stall behind it.
    await worker.kill9();
    await waitFor('the dead consumer to be gone', async () => (await sys.consumers(QUEUE)) === 0);
    expect(await sys.queueDepth(QUEUE), 'the original returned to the queue').to.equal(1);
    const second = await sys.startWorker('analytics', { WARREN_LOG_LEVEL: 'info' });
    await waitFor('the second worker to be refused too', () => second.output.some((l) => l.includes('retry/park publish failed')));
    const [fine2] = await publishTweets(sys.amqpUrl, ['fine behind a refused redelivery']);
    await waitFor('a good tweet to be applied behind it', async () => (await books.tweetCount(fine2!.authorId)) === 1, 15_000);
    const refusedAgain = await probe(healthPort, '/readyz');
    expect(refusedAgain.status).to.equal(503);
    expect(refusedAgain.body.detail).to.match(/cannot retry or park/);

    await sys.management.deletePolicy(sys.vhost, 'test.dlq-full');
    const removedAt = Date.now();
    await waitFor('the park to go through', async () => (await sys.queueDepth(DLQ)) === fillers + 1, 30_000, 100);
    const parkedAfterMs = Date.now() - removedAt;
    await waitFor('readyz to answer 200 again', async () => (await probe(healthPort, '/readyz')).status === 200);
    const parked = (await peek(sys.amqpUrl, DLQ, fillers + 1)).find((m) => m.properties.messageId === poisonId);
    expect(parked?.properties.headers?.['x-warren-error-kind']).to.equal('permanent');
    const refusals = [worker, second].map((p) => p.output.filter((l) => l.includes('retry/park publish failed')).length);
    expect(await books.applied()).to.equal(2);

    expect(await second.stop()).to.equal(0);
    expect(await sys.queueDepth(QUEUE), 'the original was acked: nothing came back on stop').to.equal(0);
    figures('15a', {
      fillersAccepted: fillers,
      refusedParkAttemptsPerWorker: refusals,
      detailWhileFull: refused.body.detail,
      parkedAfterPolicyRemovedMs: parkedAfterMs,
    });
  });

  describe('under a lowered broker consumer timeout', () => {
    // The node is shared: its consumer_timeout is lowered only while the worker opens its channel
    // (a channel reads it when it opens), and put back exactly as it was, whatever happens.
    let saved: number | undefined;
    let read = false;
    before(async () => {
      saved = await consumerTimeout();
      read = true;
    });
    after(async () => {
      if (read) await setConsumerTimeout(saved);
    });

    it('16. a batch failed by a locked store reruns alone only what ends within worker.batchDeadlineMs, retries the rest at once: the broker never closes the channel, nothing is lost or doubled', async () => {
      const CONSUMER_TIMEOUT_MS = 30_000;
      const { sys, books } = await system({
        worker: { handlerTimeoutMs: 2000, batchDeadlineMs: 8000 },
        // Many rounds through the delay queue while the store stays locked: none may park.
        retry: { attempts: { [QUEUE]: 60, 'notifications.user-events': 5 } },
      });
      await setConsumerTimeout(CONSUMER_TIMEOUT_MS);
      const openedBy = Date.now();
      let worker: WarrenProcess;
      try {
        worker = await sys.startWorker('analytics', { WARREN_LOG_LEVEL: 'info' });
      } finally {
        await setConsumerTimeout(saved);
      }
      // Retries come back after 1 s instead of 5 s, 30 s, 2 min...: many rounds fit in the lock.
      const fastDelay = { 'message-ttl': 1000, 'dead-letter-exchange': 'warren.return', 'dead-letter-strategy': 'at-least-once', overflow: 'reject-publish' };
      await sys.management.putPolicy(sys.vhost, 'test.fast-delays', {
        pattern: '^warren\\.delay\\.',
        'apply-to': 'queues',
        priority: 100,
        definition: fastDelay,
      });
      await waitFor(
        'the delay queues to take the short TTL',
        async () => (await sys.management.getQueue(sys.vhost, 'warren.delay.30s'))?.effective_policy_definition?.['message-ttl'] === 1000,
        20_000,
        250,
      );

      const release = await lockAnalyticsStore(sys.config);
      let tweets: Awaited<ReturnType<typeof publishTweets>>;
      try {
        tweets = await publishTweets(
          sys.amqpUrl,
          Array.from({ length: 40 }, (_, i) => `held ${i}`),
        );
        // The broker checks a channel's unacked deliveries once a minute from its opening: locked past
        // that first check, a batch rerun one by one (each waiting out the lock) would be held twice
        // the consumer timeout by then, and the broker would close the channel.
        await sleep(Math.max(0, openedBy + 75_000 - Date.now()));
      } finally {
        await release();
      }
      const releasedAt = Date.now();
      await waitFor('every tweet to be applied', async () => (await books.applied()) === tweets.length, 60_000, 250);
      const appliedAfterMs = Date.now() - releasedAt;
      await sleep(1500);
      expect(await books.applied()).to.equal(tweets.length);
      expect(await books.counted(), 'each applied once').to.equal(tweets.length);
      for (const q of [QUEUE, DLQ, 'warren.delay.5s', 'warren.delay.30s', 'warren.delay.2m', 'warren.delay.10m'])
        expect(await sys.queueDepth(q), q).to.equal(0);

      const lines = worker.output;
      const closed = lines.filter((l) => /channel error|PRECONDITION_FAILED|acknowledgement/.test(l));
      expect(closed, 'the broker closed no channel').to.deep.equal([]);
      const outOfTime = lines.filter((l) => l.includes('failed batch out of time')).length;
      const failedBatches = lines.filter((l) => l.includes('batch failed; its messages run again one at a time')).length;
      const retries = lines.filter((l) => l.includes('"retry scheduled"')).length;
      expect(failedBatches, 'the lock failed batches').to.be.greaterThan(0);
      expect(outOfTime, 'fallbacks cut short by their deadline').to.be.greaterThan(0);
      expect(await worker.stop()).to.equal(0);
      const stopped = worker.output.find((l) => l.includes('"worker stopped"'));
      const counts = (JSON.parse(stopped!) as { counts: Record<string, number> }).counts;
      expect(counts, 'no ack went to a closed channel, none parked').to.include({ stale: 0, parked: 0 });
      figures('16', {
        consumerTimeoutMs: CONSUMER_TIMEOUT_MS,
        lockedMs: releasedAt - openedBy,
        failedBatches,
        cutShortByDeadline: outOfTime,
        retries,
        appliedAfterReleaseMs: appliedAfterMs,
        counts,
      });
    });
  });

  /** Deliveries a worker has run, batched or alone, from its debug log. */
  function handledBy(proc: WarrenProcess): number {
    return proc.output.filter((l) => l.includes('"msg":"handler finished"') || l.includes('"msg":"redelivered message runs alone"')).length;
  }

  /** messageId -> highest x-delivery-count with which it ran alone, from the workers' debug logs. */
  function deliveryCounts(procs: WarrenProcess[]): Map<string, number> {
    const counts = new Map<string, number>();
    for (const p of procs) {
      for (const line of p.output) {
        if (!line.includes('redelivered message runs alone')) continue;
        const entry = JSON.parse(line) as { messageId: string; deliveryCount: number };
        counts.set(entry.messageId, Math.max(counts.get(entry.messageId) ?? 0, entry.deliveryCount));
      }
    }
    return counts;
  }

  it('15b. kill -9 of a worker holding many unacked messages, 24 times: none reaches the delivery-limit, each is applied once', async () => {
    let total = 0;
    // A large prefetch, so that each kill returns many messages at once.
    const { sys, books } = await system({ worker: { prefetch: 1000 } });
    const publish = async (n: number) => {
      await publishTweets(
        sys.amqpUrl,
        Array.from({ length: n }, (_, i) => `innocent ${total + i}`),
      );
      total += n;
    };
    await publish(3000);
    const kills: number[] = [];
    for (let k = 0; k < 24; k++) {
      // A worker that opens up applies a full prefetch in one commit, and may drain the queue
      // before it is stopped: keep fresh work waiting, so that each next worker has some to do.
      if ((await sys.queueDepth(QUEUE)) < 100) await publish(1000);
      const worker = await sys.startWorker('analytics', { WARREN_LOG_LEVEL: 'debug' });
      // Deliveries it handled, not effects applied: a redelivery whose effect the killed worker
      // committed before its ack is a duplicate, which applies nothing.
      await waitFor('the worker to handle deliveries', () => handledBy(worker) >= 10, 30_000, 10);
      // Frozen first, so that what it holds can be counted: everything it held is ready again once it is dead.
      worker.child.kill('SIGSTOP');
      const readyBefore = await sys.queueDepth(QUEUE);
      await worker.kill9();
      await waitFor('the dead consumer to be gone', async () => (await sys.consumers(QUEUE)) === 0);
      kills.push((await sys.queueDepth(QUEUE)) - readyBefore);
    }
    const last = await sys.startWorker('analytics', { WARREN_LOG_LEVEL: 'debug' });
    await waitFor('every tweet to be applied or parked', async () => (await books.applied()) + (await sys.queueDepth(DLQ)) === total, 120_000, 250);
    await sleep(1000);
    const counts = [...deliveryCounts(sys.processes).values()];
    const maxCount = Math.max(0, ...counts);
    const [applied, counted, parked] = [await books.applied(), await books.counted(), await sys.queueDepth(DLQ)];
    figures('15b kill -9', {
      kills: kills.length,
      heldAtEachKill: kills,
      published: total,
      applied,
      counted,
      parked,
      redeliveredRanAlone: counts.length,
      maxDeliveryCount: maxCount,
    });
    expect(parked, 'none parked as a crash loop').to.equal(0);
    expect(applied).to.equal(total);
    expect(counted, 'each applied once').to.equal(total);
    expect(await last.stop()).to.equal(0);
    expect(await sys.queueDepth(QUEUE)).to.equal(0);
    expect(maxCount, 'highest delivery count any message reached').to.be.below(20);
  });

  /**
   * Runs `workers` crash-worker processes, restarting each one that dies
   * (the supervisor's job), until `settledNow` holds; counts the deaths.
   */
  async function crashLoop(sys: TestSystem, workers: number, settledNow: () => Promise<boolean>): Promise<{ crashes: number; settled: boolean }> {
    const script = path.resolve(__dirname, 'fixtures', 'crashWorker.js');
    let runs = 0;
    const start = () => {
      const child = spawn(process.execPath, ['--enable-source-maps', script], { env: { ...sys.env, CRASH_PREFETCH: '50' }, stdio: ['ignore', 'pipe', 'pipe'] });
      const proc = new WarrenProcess(`crash worker run ${++runs}`, child);
      sys.processes.push(proc);
      return proc;
    };
    const slots = Array.from({ length: workers }, start);
    let crashes = 0;
    const deadline = Date.now() + 150_000;
    while (Date.now() < deadline) {
      for (let i = 0; i < slots.length; i++) {
        if (slots[i]!.running) continue;
        crashes++;
        slots[i] = start();
      }
      if (await settledNow()) {
        const codes = await Promise.all(slots.map((p) => p.stop()));
        expect(codes, 'the last runs stop cleanly').to.deep.equal(slots.map(() => 0));
        return { crashes, settled: true };
      }
      await sleep(100);
    }
    return { crashes, settled: false };
  }

  for (const workers of [1, 2]) {
    it(`15b. a message that crashes the worker is parked by the broker (delivery_limit); the innocents held with it are all applied, none parked (${workers} worker${workers > 1 ? 's, fresh messages flowing' : ''})`, async () => {
      const { sys, books } = await system();
      const texts = Array.from({ length: 60 }, (_, i) => `innocent ${i}`);
      texts.splice(5, 0, 'poison #crash');
      const tweets = await publishTweets(sys.amqpUrl, texts);
      const poison = tweets[5]!;
      // With competing workers, fresh messages keep coming, so the survivor of a crash holds a full prefetch when the poison reaches it.
      let flowing = workers > 1;
      const flow = (async () => {
        for (let i = 0; flowing && i < 40; i++) {
          tweets.push(
            ...(await publishTweets(
              sys.amqpUrl,
              Array.from({ length: 20 }, (_, j) => `fresh ${i}.${j}`),
            )),
          );
          await sleep(250);
        }
        flowing = false;
      })();
      const innocents = () => tweets.length - 1;
      // Settled: nothing ready, the poison parked, every innocent applied (or, were they not protected, parked with it).
      const settledNow = async () => {
        if (flowing) return false;
        const [ready, parked, applied] = [await sys.queueDepth(QUEUE), await sys.queueDepth(DLQ), await books.applied()];
        return ready === 0 && parked >= 1 && applied + parked - 1 === innocents();
      };
      const { crashes, settled } = await crashLoop(sys, workers, settledNow);
      flowing = false;
      await flow;

      const counts = deliveryCounts(sys.processes);
      const innocentCounts = tweets.filter((t) => t !== poison).map((t) => counts.get(t.messageId) ?? 0);
      const maxInnocent = Math.max(...innocentCounts);
      const parkedMessages = await peek(sys.amqpUrl, DLQ, innocents() + 1);
      const [applied, counted] = [await books.applied(), await books.counted()];
      figures(`15b poison, ${workers} worker(s)`, {
        innocents: innocents(),
        crashes,
        poisonMaxDeliveryCount: counts.get(poison.messageId),
        innocentsRedelivered: innocentCounts.filter((c) => c > 0).length,
        maxInnocentDeliveryCount: maxInnocent,
        parked: parkedMessages.length,
        parkedInnocents: parkedMessages.filter((m) => m.properties.messageId !== poison.messageId).length,
        applied,
        counted,
      });
      expect(settled, 'the poison was parked and every innocent applied').to.equal(true);
      expect(
        parkedMessages.map((m) => m.properties.messageId),
        'only the poison parked',
      ).to.deep.equal([poison.messageId]);
      const headers = parkedMessages[0]!.properties.headers ?? {};
      const death = (headers['x-death'] as { reason: string; count: number; queue: string }[])[0]!;
      expect(death.reason).to.equal('delivery_limit');
      expect(death.queue).to.equal(QUEUE);
      expect(headers['x-first-death-reason']).to.equal('delivery_limit');
      expect(applied).to.equal(innocents());
      expect(counted, 'each innocent applied once').to.equal(innocents());
      expect(await books.tweetCount(poison.authorId)).to.equal(0);
      expect(maxInnocent, "an innocent's highest delivery count").to.be.at.most(workers > 1 ? 5 : 2);
      expect(crashes, 'the poison crashed a worker until the broker parked it').to.be.within(20, 22);
    });
  }
});
