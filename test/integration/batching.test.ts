import amqplib from 'amqplib';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { connectBroker } from '../../src/broker/connection';
import type { QueueConsumer } from '../../src/consume/consumer';
import { loadDefinitions, retargetDefinitions } from '../../src/topology/definitions';
import { INBOX_TABLE } from '../../src/db/inbox';
import { openDatabase } from '../../src/db/knex';
import { PermanentError } from '../../src/domain/errors';
import { newId } from '../../src/domain/ids';
import { APP_ID, buildEvent } from '../../src/domain/messages';
import { createLogger } from '../../src/log';
import { analyticsBatchHandler, analyticsHandler, analyticsWorker } from '../../src/workers/analytics';
import type { WorkerDeclaration } from '../../src/workers/declaration';
import { wireWorker } from '../../src/workers/wiring';
import { peek } from '../support/amqp';
import { TestSystem, TEST_DB, waitFor, type WarrenProcess } from '../support/system';

/**
 * Batched consumption against the real broker and database: deliveries
 * that arrive together are applied in one transaction and acked together,
 * and whatever goes wrong inside a batch (a poison message, a commit that
 * fails, a worker killed) neither loses a neighbour nor applies one twice.
 */
const QUEUE = analyticsWorker.queue;
const DLQ = `${QUEUE}.dlq`;
const TAG = 'batched';

interface Tweet {
  messageId: string;
  authorId: string;
  authorHandle: string;
  text: string;
}

/** Tweets by a few authors, each with #batched, so the books can be checked three ways. */
function tweets(n: number, label: string): Tweet[] {
  const authors = Array.from({ length: 5 }, (_, i) => ({ id: newId(), handle: `${label}_${i}` }));
  return Array.from({ length: n }, (_, i) => {
    const author = authors[i % authors.length]!;
    return { messageId: newId(), authorId: author.id, authorHandle: author.handle, text: `${label} ${i} #${TAG}` };
  });
}

/** Publishes as the relay does (persistent, mandatory, confirmed), in order, on one channel: they arrive together. */
async function publish(amqpUrl: string, batch: Tweet[]): Promise<void> {
  const conn = await amqplib.connect(amqpUrl);
  try {
    const ch = await conn.createConfirmChannel();
    for (const t of batch) {
      const event = buildEvent('tweet.created', {
        tweetId: newId(),
        authorId: t.authorId,
        authorHandle: t.authorHandle,
        text: t.text,
        createdAt: new Date().toISOString(),
      });
      ch.publish(event.exchange, event.routingKey, Buffer.from(event.payload), {
        persistent: true,
        mandatory: true,
        messageId: t.messageId,
        type: event.type,
        contentType: 'application/json',
        appId: APP_ID,
        headers: { 'x-schema-version': event.schemaVersion },
      });
    }
    await ch.waitForConfirms();
    await ch.close();
  } finally {
    await conn.close();
  }
}

/** What the analytics worker applied, read from its own database. */
class Books {
  constructor(readonly db: Knex) {}

  async inbox(): Promise<number> {
    const [row] = await this.db(INBOX_TABLE).where({ consumer: 'analytics' }).count({ n: '*' });
    return Number(row?.n ?? 0);
  }

  async has(messageId: string): Promise<boolean> {
    return (await this.db(INBOX_TABLE).where({ consumer: 'analytics', message_id: messageId }).first()) !== undefined;
  }

  /** Tweets counted by the effects themselves: a message applied twice counts twice here. */
  async counted(): Promise<{ tweets: number; tagged: number; hourly: number }> {
    const [stats] = await this.db('user_stats').sum({ n: 'tweet_count' });
    const tag = await this.db('hashtags').where({ tag: TAG }).first('count');
    const [hours] = await this.db('tweets_per_hour').sum({ n: 'count' });
    return { tweets: Number(stats?.n ?? 0), tagged: Number(tag?.count ?? 0), hourly: Number(hours?.n ?? 0) };
  }
}

/**
 * The worker's log entries with this message. A line that came split over
 * two output chunks does not parse and is skipped: counts from these are
 * lower bounds.
 */
function logEntries<T>(proc: WarrenProcess, msg: string): T[] {
  const entries: T[] = [];
  for (const line of proc.output) {
    if (!line.includes(`"msg":"${msg}`)) continue;
    try {
      entries.push(JSON.parse(line) as T);
    } catch {
      // split line
    }
  }
  return entries;
}

/** The counts a worker logged when it stopped. */
function stoppedCounts(proc: WarrenProcess): Record<string, number> {
  const [entry] = logEntries<{ counts: Record<string, number> }>(proc, 'worker stopped');
  if (!entry) throw new Error(`no "worker stopped" line in:\n${proc.tail()}`);
  return entry.counts;
}

/** The sizes of the batches a worker committed (logged at debug). */
function batchSizes(proc: WarrenProcess): number[] {
  return logEntries<{ messages: number }>(proc, 'batch committed').map((e) => e.messages);
}

describe(`batched consumption (${TEST_DB})`, function () {
  this.timeout(180_000);
  const sys = new TestSystem();
  let db: Knex;
  let books: Books;
  let worker: WarrenProcess | undefined;

  before(async () => {
    await sys.setUp();
    db = openDatabase(sys.config, 'analytics');
    books = new Books(db);
  });

  beforeEach(async () => {
    for (const table of [INBOX_TABLE, 'user_stats', 'user_hashtags', 'user_mentions', 'hashtags', 'tweets_per_hour']) await db(table).delete();
    await purge(QUEUE, DLQ);
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && worker) console.log(worker.tail(40));
    await worker?.stop();
    worker = undefined;
  });

  after(async () => {
    await db?.destroy();
    await sys.tearDown();
  });

  const startWorker = () => sys.startWorker('analytics', { WARREN_LOG_LEVEL: 'debug' });

  it('applies a backlog in batches, each tweet once, and leaves nothing unacked', async () => {
    const n = 1000;
    await publish(sys.amqpUrl, tweets(n, 'backlog'));
    worker = await startWorker();
    await waitFor('every tweet applied', async () => (await books.inbox()) === n, 60_000);
    expect(await books.counted()).to.deep.equal({ tweets: n, tagged: n, hourly: n });
    expect(await worker.stop()).to.equal(0);
    const sizes = batchSizes(worker);
    expect(sizes.reduce((a, b) => a + b, 0)).to.be.at.most(n);
    expect(Math.max(...sizes), `batch sizes ${sizes.join(',')}`)
      .to.be.greaterThan(1)
      .and.at.most(200);
    expect(stoppedCounts(worker)).to.include({ applied: n, duplicate: 0, retried: 0, parked: 0, stale: 0 });
    expect(await sys.queueDepth(QUEUE), 'nothing came back to the queue when it stopped').to.equal(0);
  });

  it('parks a poison message of a batch alone, and applies each of its neighbours once', async () => {
    const batch = tweets(120, 'poison');
    // A handle no column can hold: the handler throws PermanentError for it.
    const poison = batch[60]!;
    poison.authorHandle = 'not a handle!';
    await publish(sys.amqpUrl, batch);
    worker = await startWorker();
    await waitFor('the poison message parked', async () => (await sys.queueDepth(DLQ)) === 1, 30_000);
    await waitFor('its neighbours applied', async () => (await books.inbox()) === batch.length - 1, 30_000);
    expect(await books.counted()).to.deep.equal({ tweets: batch.length - 1, tagged: batch.length - 1, hourly: batch.length - 1 });
    expect(await books.has(poison.messageId)).to.equal(false);
    const [parked] = await peek(sys.amqpUrl, DLQ, 1);
    expect(parked?.properties.messageId).to.equal(poison.messageId);
    expect(parked?.properties.headers?.['x-warren-error-kind']).to.equal('permanent');
    expect(String(parked?.properties.headers?.['x-warren-error'])).to.match(/PermanentError: authorHandle "not a handle!"/);

    expect(await worker.stop()).to.equal(0);
    const failed = logEntries<{ messages: number }>(worker, 'batch failed');
    expect(failed.length, 'the poison was in a batch with others').to.be.at.most(1);
    expect(worker.output.filter((l) => l.includes('batch failed'))).to.have.length(1);
    if (failed[0]) expect(failed[0].messages).to.be.greaterThan(1);
    expect(stoppedCounts(worker)).to.include({ applied: batch.length - 1, duplicate: 0, parked: 1, retried: 0, stale: 0 });
    expect(await sys.queueDepth(QUEUE)).to.equal(0);
  });

  it('runs again alone what a batch held when its COMMIT failed: nothing applied twice, the failing one parked after its attempts', async () => {
    const batch = tweets(120, 'commit');
    const refused = batch[50]!;
    const dropGuard = await refuseCommitOf(refused.messageId);
    try {
      await publish(sys.amqpUrl, batch);
      worker = await startWorker();
      await waitFor('the others applied', async () => (await books.inbox()) === batch.length - 1, 30_000);
      // Two attempts (config/test.json): the retry comes back after the 5 s step, fails at COMMIT again, and is parked.
      await waitFor('the refused one parked', async () => (await sys.queueDepth(DLQ)) === 1, 30_000, 250);
      expect(await books.counted()).to.deep.equal({ tweets: batch.length - 1, tagged: batch.length - 1, hourly: batch.length - 1 });
      const [parked] = await peek(sys.amqpUrl, DLQ, 1);
      expect(parked?.properties.messageId).to.equal(refused.messageId);
      expect(parked?.properties.headers?.['x-warren-error-kind']).to.equal('exhausted');
      expect(String(parked?.properties.headers?.['x-warren-error'])).to.match(/FOREIGN KEY|commit refused/);
    } finally {
      await dropGuard();
    }
    // The store is usable after a failed COMMIT (SQLite keeps the transaction open unless it is ended).
    const after = tweets(3, 'after');
    await publish(sys.amqpUrl, after);
    await waitFor('tweets after the failed commit applied', async () => (await books.inbox()) === batch.length - 1 + after.length, 20_000);
    expect(await worker!.stop()).to.equal(0);
    expect(worker!.output.some((l) => l.includes('batch failed'))).to.equal(true);
    expect(stoppedCounts(worker!)).to.include({ applied: batch.length - 1 + after.length, duplicate: 0, retried: 1, parked: 1, stale: 0 });
  });

  it('a worker killed with batches in flight: the next applies the rest, and nothing twice', async () => {
    const n = 10_000;
    await publish(sys.amqpUrl, tweets(n, 'killed'));
    const first = await startWorker();
    worker = first;
    await waitFor('the first batches applied', async () => (await books.inbox()) > 0, 30_000, 5);
    await first.kill9();
    // A COMMIT already sent when the process died may still land (PostgreSQL): count after it would have.
    await new Promise((r) => setTimeout(r, 500));
    const atKill = await books.inbox();
    expect(atKill, 'killed part-way through the backlog').to.be.below(n);
    worker = await startWorker();
    await waitFor('every tweet applied', async () => (await books.inbox()) === n, 120_000, 100);
    expect(await books.counted()).to.deep.equal({ tweets: n, tagged: n, hourly: n });
    expect(await worker.stop()).to.equal(0);
    const counts = stoppedCounts(worker);
    expect(counts.applied).to.equal(n - atKill);
    expect(counts).to.include({ parked: 0, retried: 0, stale: 0 });
    expect(await sys.queueDepth(QUEUE)).to.equal(0);
    expect(await sys.queueDepth(DLQ)).to.equal(0);
  });

  describe('afterCommit', () => {
    let consumer: QueueConsumer | undefined;
    let closers: (() => Promise<unknown>)[] = [];

    afterEach(async () => {
      for (const close of closers) await close().catch(() => undefined);
      closers = [];
      consumer = undefined;
    });

    /** QueueConsumer in this process, wired as `warren worker analytics` wires it, for `worker`. */
    function startInProcess(worker: WorkerDeclaration<'tweet.created'>): QueueConsumer {
      const log = createLogger('batching-test', process.env.WARREN_TEST_LOG_LEVEL ?? 'silent');
      const defs = retargetDefinitions(loadDefinitions(sys.config.amqp.definitionsFile), sys.vhost);
      const workerDb = openDatabase(sys.config, 'analytics');
      const common = { url: sys.amqpUrl, service: 'batching-test', heartbeatSeconds: 10, reconnectSeconds: 1, log };
      const consumeConnection = connectBroker({ ...common, role: 'consume' });
      const publishConnection = connectBroker({ ...common, role: 'publish' });
      // A prefetch of 200 and a 30 s handler timeout; retries and parks confirmed within 5 s.
      const config = {
        ...sys.config,
        relay: { ...sys.config.relay, publishTimeoutMs: 5000 },
        worker: { ...sys.config.worker, prefetch: 200, handlerTimeoutMs: 30_000 },
      };
      const { consumer: c, close } = wireWorker(worker, { config, defs, consumeConnection, publishConnection, db: workerDb, log });
      closers = [() => c.stop(5000), () => close(), () => consumeConnection.close(), () => publishConnection.close(), () => workerDb.destroy()];
      return c;
    }

    it('runs callbacks once their transaction committed, never for a message that failed, and a failing callback changes nothing', async () => {
      const ran: { messageId: string; committed: boolean }[] = [];
      consumer = startInProcess({
        ...analyticsWorker,
        handleBatch: undefined,
        handle: async (message, tx, ctx) => {
          await analyticsHandler(message, tx);
          ctx.afterCommit(async () => {
            // Read on another connection: only a committed effect is visible there.
            ran.push({ messageId: message.messageId, committed: await books.has(message.messageId) });
          });
          if (message.body.text.includes('#throwing')) ctx.afterCommit(() => Promise.reject(new Error('push failed')));
          if (message.body.text.includes('#refused')) throw new PermanentError('refused by the test');
        },
      });
      await waitFor('the consumer to subscribe', () => consumer!.status().consuming);
      const batch = tweets(6, 'callbacks');
      batch[2]!.text += ' #refused';
      batch[4]!.text += ' #throwing';
      await publish(sys.amqpUrl, batch);
      await waitFor('every message settled', () => consumer!.counts.applied + consumer!.counts.parked === batch.length, 20_000);
      await waitFor('the callbacks to run', () => ran.length === batch.length - 1);
      expect(ran.map((r) => r.messageId).sort()).to.deep.equal(
        batch
          .filter((_, i) => i !== 2)
          .map((t) => t.messageId)
          .sort(),
      );
      expect(
        ran.every((r) => r.committed),
        'each ran after its commit',
      ).to.equal(true);
      expect(consumer.counts).to.include({ applied: batch.length - 1, parked: 1, stale: 0 });
      await closers.shift()!(); // stop: anything unacked would be back in the queue
      expect(await sys.queueDepth(QUEUE)).to.equal(0);
    });

    it('runs a batch handler callback once, after the batch committed', async () => {
      const seen: { size: number; committed: number }[] = [];
      const onCommit = (messages: { messageId: string }[]) => async () => {
        let committed = 0;
        for (const m of messages) if (await books.has(m.messageId)) committed++;
        seen.push({ size: messages.length, committed });
      };
      consumer = startInProcess({
        ...analyticsWorker,
        // A message run alone (a batch that failed under load) registers its callback too.
        handle: async (message, tx, ctx) => {
          await analyticsHandler(message, tx);
          ctx.afterCommit(onCommit([message]));
        },
        handleBatch: async (messages, tx, ctx) => {
          await analyticsBatchHandler(messages, tx);
          ctx.afterCommit(onCommit(messages));
        },
      });
      await waitFor('the consumer to subscribe', () => consumer!.status().consuming);
      const n = 300;
      await publish(sys.amqpUrl, tweets(n, 'batchcallbacks'));
      await waitFor('every message applied', () => consumer!.counts.applied === n, 30_000);
      await waitFor('the callbacks to run', () => seen.reduce((a, s) => a + s.size, 0) === n, 20_000).catch((err) => {
        throw new Error(`${(err as Error).message}: ${JSON.stringify({ seen, counts: consumer!.counts })}`);
      });
      expect(
        seen.every((s) => s.committed === s.size),
        JSON.stringify(seen),
      ).to.equal(true);
      expect(Math.max(...seen.map((s) => s.size))).to.be.greaterThan(1);
    });
  });

  /** Each test starts from empty queues and counts its own parks. */
  async function purge(...queues: string[]): Promise<void> {
    const conn = await amqplib.connect(sys.amqpUrl);
    try {
      const ch = await conn.createChannel();
      for (const q of queues) await ch.purgeQueue(q);
      await ch.close();
    } finally {
      await conn.close();
    }
  }

  /**
   * Makes every COMMIT of a transaction that wrote `messageId`'s inbox
   * record fail, the way a deferred constraint does: the statements all
   * succeed, the COMMIT refuses. Returns how to undo it.
   */
  async function refuseCommitOf(messageId: string): Promise<() => Promise<void>> {
    if (TEST_DB === 'postgres') {
      await db.raw(
        `CREATE FUNCTION refuse_commit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'commit refused for %', NEW.message_id; END $$ LANGUAGE plpgsql`,
      );
      await db.raw(
        `CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON ${INBOX_TABLE} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.message_id = '${messageId}') EXECUTE FUNCTION refuse_commit()`,
      );
      return async () => {
        await db.raw(`DROP TRIGGER refuse_commit ON ${INBOX_TABLE}`);
        await db.raw('DROP FUNCTION refuse_commit()');
      };
    }
    // SQLite checks a deferred foreign key at COMMIT (foreign_keys is on in every Warren connection).
    await db.raw('CREATE TABLE refuse_parent (id TEXT PRIMARY KEY)');
    await db.raw('CREATE TABLE refuse_child (parent_id TEXT REFERENCES refuse_parent(id) DEFERRABLE INITIALLY DEFERRED)');
    await db.raw(
      `CREATE TRIGGER refuse_commit AFTER INSERT ON ${INBOX_TABLE} WHEN NEW.message_id = '${messageId}' BEGIN INSERT INTO refuse_child VALUES ('missing'); END`,
    );
    return async () => {
      await db.raw('DROP TRIGGER refuse_commit');
      await db.raw('DROP TABLE refuse_child');
      await db.raw('DROP TABLE refuse_parent');
    };
  }
});
