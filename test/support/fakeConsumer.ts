import type { Knex } from 'knex';
import { QueueConsumer } from '../../src/consume/consumer';
import type { WorkerDefinition } from '../../src/consume/handler';
import { ConfirmPublisher } from '../../src/broker/publisher';
import { newId } from '../../src/domain/ids';
import { APP_ID, buildEvent, type WarrenMessage } from '../../src/domain/messages';
import { createLogger } from '../../src/log';
import { fakeConnection, type FakeBroker, type FakeChannel, type FakeMessage } from './fakeAmqp';
import { waitFor } from './wait';

export const QUEUE = 'analytics.tweets';
export const STEPS = [{ name: '5s', exchange: 'warren.delay.5s', queue: 'warren.delay.5s', ttlMs: 5000 }];

/** A tweet.created as the relay publishes it; `redelivered` as a quorum queue hands back one that came back unacked. */
export function tweetMessage(opts: { redelivered?: boolean; contentType?: string } = {}): FakeMessage & { messageId: string } {
  const event = buildEvent('tweet.created', {
    tweetId: newId(),
    authorId: newId(),
    authorHandle: 'author',
    text: 'a tweet',
    createdAt: new Date().toISOString(),
  });
  const headers: Record<string, unknown> = { 'x-schema-version': event.schemaVersion };
  if (opts.redelivered) headers['x-delivery-count'] = 1;
  return {
    messageId: event.messageId,
    content: Buffer.from(event.payload),
    exchange: event.exchange,
    routingKey: event.routingKey,
    redelivered: opts.redelivered ?? false,
    properties: { messageId: event.messageId, type: event.type, contentType: opts.contentType ?? 'application/json', appId: APP_ID, headers },
  };
}

/** A handler run the test can hold open, to look at the broker while it runs. */
export class Gate {
  private readonly opened = new Map<string, () => void>();
  private readonly waiting = new Map<string, Promise<void>>();
  private readonly held = new Set<string>();
  readonly started: string[] = [];

  /** `holdAll`: every message waits for its gate; else only those named with `hold`. */
  constructor(private readonly holdAll = true) {}

  hold(...messageIds: string[]): void {
    for (const id of messageIds) this.held.add(id);
  }

  /** Called by the handler: resolves once the test opens `messageId`'s gate. */
  pass(messageId: string): Promise<void> {
    this.started.push(messageId);
    if (!this.holdAll && !this.held.has(messageId)) return Promise.resolve();
    return this.gate(messageId);
  }

  open(messageId: string): void {
    void this.gate(messageId);
    this.opened.get(messageId)!();
  }

  private gate(messageId: string): Promise<void> {
    let p = this.waiting.get(messageId);
    if (!p) {
      p = new Promise<void>((resolve) => this.opened.set(messageId, resolve));
      this.waiting.set(messageId, p);
    }
    return p;
  }
}

/** What a test worker saw: each transaction's messages, alone (`handle`) or batched (`handleBatch`). */
export interface HandlerLog {
  alone: string[];
  batches: string[][];
  /** Handlers running right now, and of them lone ones. */
  running: number;
  aloneRunning: number;
  /** Times a handler started while a lone one ran, or a lone one while any other ran. */
  overlaps: number;
}

export type TestWorker = Pick<WorkerDefinition<'tweet.created'>, 'handle' | 'handleBatch'>;

export interface ConsumerOnFakes {
  consumer: QueueConsumer;
  /** The consume connection's channels. */
  consume: FakeBroker;
  /** The publish connection's channels (retries and parks go there). */
  publish: FakeBroker;
  publisher: ConfirmPublisher;
  /** The consumer channel of the moment. */
  channel(): FakeChannel;
  /** The publisher's confirm channel of the moment. */
  confirmChannel(): FakeChannel;
  /** Delivers a first delivery and waits until it is acked and the subscription has opened to the full prefetch. */
  openSubscription(): Promise<void>;
  stop(): Promise<void>;
}

/** A QueueConsumer of `analytics.tweets` on fake consume and publish connections, its effects in `db`. */
export async function consumerOnFakes(
  db: Knex,
  worker: TestWorker,
  opts: { prefetch?: number; handlerTimeoutMs?: number; batchDeadlineMs?: number } = {},
): Promise<ConsumerOnFakes> {
  const consume = fakeConnection();
  const publish = fakeConnection();
  const log = createLogger('consumer-on-fakes', 'silent');
  const publisher = new ConfirmPublisher(publish.connection, log, 5000);
  const definition: WorkerDefinition<'tweet.created'> = { name: 'analytics', queue: QUEUE, bindings: [], handles: ['tweet.created'], ...worker };
  const prefetch = opts.prefetch ?? 10;
  const consumer = new QueueConsumer({
    connection: consume.connection,
    publisher,
    db,
    worker: definition as unknown as WorkerDefinition,
    prefetch,
    handlerTimeoutMs: opts.handlerTimeoutMs ?? 5000,
    ...(opts.batchDeadlineMs !== undefined ? { batchDeadlineMs: opts.batchDeadlineMs } : {}),
    maxAttempts: 5,
    steps: STEPS,
    log,
  });
  await waitFor('the subscription', () => consumer.status().consuming, 2000, 5);
  await publisher.waitForChannel(2000);
  const harness: ConsumerOnFakes = {
    consumer,
    consume,
    publish,
    publisher,
    channel: () => consume.latest(),
    confirmChannel: () => publish.latest(),
    async openSubscription() {
      const ch = consume.latest();
      const first = tweetMessage();
      ch.deliver(first);
      await waitFor('the first delivery to be acked', () => ch.ackedIds().includes(first.messageId), 2000, 5);
      await waitFor('the open subscription', () => ch.prefetches.at(-1) === prefetch && ch.activeConsumers().length === 1, 2000, 5);
    },
    async stop() {
      await consumer.stop(200);
      await publisher.close();
    },
  };
  return harness;
}

/** A worker whose handlers record what ran, alone or batched, and wait at `gate` when given one. */
export function recordingWorker(log: HandlerLog, gate?: Gate, opts: { batch?: boolean } = {}): TestWorker {
  const run = async (ids: string[], alone: boolean) => {
    if ((alone && log.running > 0) || log.aloneRunning > 0) log.overlaps++;
    log.running++;
    if (alone) log.aloneRunning++;
    try {
      if (alone) log.alone.push(...ids);
      else log.batches.push(ids);
      if (gate) await Promise.all(ids.map((id) => gate.pass(id)));
    } finally {
      log.running--;
      if (alone) log.aloneRunning--;
    }
  };
  return {
    handle: async (m: WarrenMessage<'tweet.created'>) => run([m.messageId], true),
    ...(opts.batch === false
      ? {}
      : {
          handleBatch: async (ms: WarrenMessage<'tweet.created'>[]) =>
            run(
              ms.map((m) => m.messageId),
              false,
            ),
        }),
  };
}

export function handlerLog(): HandlerLog {
  return { alone: [], batches: [], running: 0, aloneRunning: 0, overlaps: 0 };
}
