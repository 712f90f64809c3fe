import { EventEmitter } from 'node:events';
import type { ConsumeMessage } from 'amqplib';
import { expect } from 'chai';
import type { BrokerConnection } from '../../../src/broker/connection';
import { QueueConsumer } from '../../../src/consume/consumer';
import type { WorkerDefinition } from '../../../src/consume/handler';
import type { ConfirmPublisher, PublishRequest } from '../../../src/broker/publisher';
import { INBOX_TABLE } from '../../../src/db/inbox';
import { newId } from '../../../src/domain/ids';
import { APP_ID, buildEvent } from '../../../src/domain/messages';
import { createLogger } from '../../../src/log';
import { analyticsHandler } from '../../../src/workers/analytics';
import { sqliteTestDatabase, type TestDatabase } from '../../support/databases';

const QUEUE = 'analytics.tweets';
const STEPS = [{ name: '5s', exchange: 'warren.delay.5s', queue: 'warren.delay.5s', ttlMs: 5000 }];

/** The broker side of one consumer channel: what the lane subscribes with, and what it acks. */
class FakeChannel extends EventEmitter {
  private readonly consumers = new Map<string, (msg: ConsumeMessage | null) => void>();
  readonly acked: { messageId: string; at: number }[] = [];
  private tag = 0;

  async checkQueue(): Promise<unknown> {
    return {};
  }
  async bindQueue(): Promise<void> {}
  async prefetch(): Promise<void> {}
  async consume(_queue: string, onMessage: (msg: ConsumeMessage | null) => void, opts: { consumerTag: string }): Promise<{ consumerTag: string }> {
    this.consumers.set(opts.consumerTag, onMessage);
    return { consumerTag: opts.consumerTag };
  }
  async cancel(tag: string): Promise<void> {
    this.consumers.delete(tag);
  }
  ack(msg: ConsumeMessage, allUpTo = false): void {
    if (allUpTo) throw new Error('a multiple ack is not expected here: each message settles alone');
    this.acked.push({ messageId: String(msg.properties.messageId), at: Date.now() });
  }
  async close(): Promise<void> {
    this.emit('close');
  }

  /** Delivers tweets as the broker would, in one go, to the current subscription. */
  deliver(n: number): string[] {
    const [onMessage] = [...this.consumers.entries()].slice(-1).map(
      ([consumerTag, fn]) =>
        (msg: ConsumeMessage) =>
          fn({ ...msg, fields: { ...msg.fields, consumerTag } }),
    );
    if (!onMessage) throw new Error('not subscribed');
    return Array.from({ length: n }, (_, i) => {
      const event = buildEvent('tweet.created', {
        tweetId: newId(),
        authorId: newId(),
        authorHandle: `author_${i}`,
        text: `tweet ${i}`,
        createdAt: new Date().toISOString(),
      });
      onMessage({
        content: Buffer.from(event.payload),
        fields: { deliveryTag: ++this.tag, redelivered: false, exchange: event.exchange, routingKey: event.routingKey, consumerTag: '' },
        properties: {
          messageId: event.messageId,
          type: event.type,
          contentType: 'application/json',
          appId: APP_ID,
          headers: { 'x-schema-version': event.schemaVersion },
        },
      } as unknown as ConsumeMessage);
      return event.messageId;
    });
  }
}

function fakeConnection(channel: FakeChannel): BrokerConnection {
  const manager = Object.assign(new EventEmitter(), { connection: { createChannel: async () => channel } });
  return { manager, name: 'fake consume', isConnected: () => true, isBlocked: () => false, close: async () => undefined } as unknown as BrokerConnection;
}

/** Confirms each copy after a few milliseconds; records when. */
function fakePublisher(): { publisher: ConfirmPublisher; confirmed: Map<string, { req: PublishRequest; at: number }> } {
  const confirmed = new Map<string, { req: PublishRequest; at: number }>();
  const publisher = {
    isReady: () => true,
    publish: async (req: PublishRequest) => {
      await new Promise((r) => setTimeout(r, 5));
      confirmed.set(String(req.properties.messageId), { req, at: Date.now() });
    },
  } as unknown as ConfirmPublisher;
  return { publisher, confirmed };
}

const waitUntil = async (what: string, ok: () => boolean, timeoutMs = 5000) => {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe('QueueConsumer: the serial fallback of a failed batch', () => {
  let testDb: TestDatabase;
  const consumers: QueueConsumer[] = [];

  beforeEach(async () => {
    testDb = await sqliteTestDatabase('analytics', { service: 'analytics' })();
  });
  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.stop(100)));
    await testDb.close();
  });

  function consumer(handle: WorkerDefinition<'tweet.created'>['handle'], opts: { handlerTimeoutMs: number; batchDeadlineMs: number }) {
    const channel = new FakeChannel();
    const { publisher, confirmed } = fakePublisher();
    // The batch form fails without saying which message is to blame (a deadlock, a lock): every message reruns alone.
    const worker: WorkerDefinition<'tweet.created'> = {
      name: 'analytics',
      queue: QUEUE,
      bindings: [],
      handles: ['tweet.created'],
      handle,
      handleBatch: async () => {
        throw new Error('SQLITE_BUSY: database is locked');
      },
    };
    const c = new QueueConsumer({
      connection: fakeConnection(channel),
      publisher,
      db: testDb.db,
      worker: worker as unknown as WorkerDefinition,
      prefetch: 50,
      maxAttempts: 5,
      steps: STEPS,
      log: createLogger('batch-fallback-test', 'silent'),
      ...opts,
    });
    consumers.push(c);
    return { c, channel, confirmed };
  }

  it('sends what could not run alone before the deadline to its retry at once, unrun, and acks each only after its copy is confirmed', async () => {
    const handlerTimeoutMs = 200;
    const batchDeadlineMs = 700;
    let runs = 0;
    // Every run alone hangs until the handler timeout, as on a locked store.
    const { c, channel, confirmed } = consumer(
      async () => {
        runs++;
        await new Promise(() => undefined);
      },
      { handlerTimeoutMs, batchDeadlineMs },
    );
    await waitUntil('the subscription', () => c.status().consuming);

    const started = Date.now();
    const ids = channel.deliver(20);
    await waitUntil('every delivery to be acked', () => channel.acked.length === ids.length, 10_000);
    const tookMs = Date.now() - started;

    // Each that ran alone took the handler timeout: only those that could end by the deadline ran.
    expect(runs, 'runs alone')
      .to.be.at.least(1)
      .and.at.most(Math.floor(batchDeadlineMs / handlerTimeoutMs));
    expect(tookMs, 'all settled by the deadline (plus the copies)').to.be.below(batchDeadlineMs + 250);
    expect(channel.acked.map((a) => a.messageId).sort(), 'each acked once').to.deep.equal([...ids].sort());
    expect(c.counts).to.include({ retried: ids.length, applied: 0, parked: 0, stale: 0 });
    for (const { messageId, at } of channel.acked) {
      const copy = confirmed.get(messageId);
      expect(copy, `retry copy of ${messageId}`).to.not.equal(undefined);
      expect(copy!.at, 'acked after its copy was confirmed').to.be.at.most(at);
      expect(copy!.req.exchange).to.equal('warren.delay.5s');
      expect(copy!.req.properties.headers?.['x-warren-attempts'], 'an attempt').to.equal(1);
    }
    const unrun = [...confirmed.values()].filter((x) =>
      /^TransientError: not run: its batch failed/.test(String(x.req.properties.headers?.['x-warren-error'])),
    );
    expect(unrun.length, 'retried without running alone').to.equal(ids.length - runs);
    expect(String(unrun[0]!.req.properties.headers?.['x-warren-error'])).to.include('SQLITE_BUSY');
  });

  it('still runs every message alone, applied once, when the runs fit in the deadline', async () => {
    const { c, channel, confirmed } = consumer((m, tx) => analyticsHandler(m, tx), { handlerTimeoutMs: 1000, batchDeadlineMs: 5000 });
    await waitUntil('the subscription', () => c.status().consuming);
    const ids = channel.deliver(20);
    await waitUntil('every delivery to be acked', () => channel.acked.length === ids.length);
    expect(c.counts).to.include({ applied: ids.length, retried: 0, parked: 0 });
    expect(confirmed.size, 'no retry copies').to.equal(0);
    const [row] = await testDb.db(INBOX_TABLE).where({ consumer: 'analytics' }).count({ n: '*' });
    expect(Number(row?.n)).to.equal(ids.length);
  });
});
