/** @file
 * The console's index of parked messages on the real broker: a park by
 * Warren's consumer and a crash loop parked by the broker itself each reach
 * `warren.parked.index` and are indexed once, however often a copy of the
 * same park arrives; the DLQ keeps the messages.
 */
import crypto from 'node:crypto';
import amqp from 'amqplib';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { connectBroker, type BrokerConnection } from '../../src/broker/connection';
import { ParkIndexer } from '../../src/console/indexer';
import { PARKED_INDEX_QUEUE } from '../../src/console/parkRecord';
import { findParked, summaryOf, type ParkedRow } from '../../src/console/parkedIndex';
import { PARKED_TABLE } from '../../src/db/migrations/console';
import { openDatabase } from '../../src/db/knex';
import { createLogger } from '../../src/log';
import { replayParked } from '../../src/ops/dlq';
import { rawPublish } from '../support/amqp';
import { TestSystem, waitFor } from '../support/system';

const QUEUE = 'analytics.tweets';

describe('console: the index of parked messages (integration)', function () {
  this.timeout(120_000);
  const sys = new TestSystem();
  let db: Knex;
  let connection: BrokerConnection;
  let indexer: ParkIndexer;
  const crashId = crypto.randomUUID();
  const badId = crypto.randomUUID();

  const rows = async () => ((await db(PARKED_TABLE).select('*').orderBy('parked_at')) as ParkedRow[]).map(summaryOf);

  before(async function () {
    await sys.setUp();
    db = openDatabase(sys.config, 'console');
  });

  after(async function () {
    await indexer?.stop();
    await connection?.close();
    await db?.destroy();
    await sys.tearDown();
  });

  it('indexes a crash loop the broker parked, with x-death as its reason', async function () {
    await rawPublish(sys.amqpUrl, 'warren.return', QUEUE, '{"tweetId":"crash"}', {
      messageId: crashId,
      type: 'tweet.created',
      contentType: 'application/json',
    });
    // Each requeue counts a delivery; past the policy's delivery-limit the broker dead-letters it to warren.dlx.
    const conn = await amqp.connect(sys.amqpUrl);
    const ch = await conn.createChannel();
    await waitFor('the broker to park the crash loop', async () => {
      const msg = await ch.get(QUEUE, { noAck: false });
      if (msg) ch.nack(msg, false, true);
      return (await ch.checkQueue(`${QUEUE}.dlq`)).messageCount === 1;
    });
    await conn.close();

    connection = connectBroker({
      url: sys.amqpUrl,
      service: 'console',
      role: 'consume',
      heartbeatSeconds: 10,
      reconnectSeconds: 1,
      log: createLogger('test', 'silent'),
    });
    indexer = new ParkIndexer({ connection, db, log: createLogger('test', 'silent') });
    const [row] = await waitFor('the crash loop indexed', async () => {
      const found = await rows();
      return found.length === 1 && found;
    });
    expect(row).to.include({
      queue: QUEUE,
      originalQueue: QUEUE,
      messageId: crashId,
      type: 'tweet.created',
      kind: 'crash-loop',
      reason: 'delivery_limit',
      status: 'parked',
      replayCount: 0,
    });
    const detail = (await findParked(db, row!.id))!;
    expect(detail.body).to.deep.equal({ tweetId: 'crash' });
    expect(detail.headers['x-death']).to.be.an('array').with.length(1);
    expect(detail.properties).to.include({ messageId: crashId, contentType: 'application/json' });
  });

  it("indexes a park by Warren's consumer with Warren's headers", async function () {
    await sys.startWorker('analytics');
    await rawPublish(sys.amqpUrl, 'tweets', 'tweet.created', 'this is not {json', {
      messageId: badId,
      type: 'tweet.created',
      contentType: 'application/json',
      headers: { 'x-schema-version': '1.0' },
    });
    await waitFor('the park indexed', async () => (await rows()).length === 2);
    const warren = (await rows()).find((r) => r.messageId === badId)!;
    expect(warren).to.include({ queue: QUEUE, originalQueue: QUEUE, type: 'tweet.created', kind: 'permanent', attempts: 1, status: 'parked' });
    expect(warren.reason).to.match(/json/i);
    const detail = (await findParked(db, warren.id))!;
    expect(detail.bodyText).to.equal('this is not {json');
    expect(detail.body).to.equal(undefined);
    expect(detail.headers).to.include({ 'x-warren-error-kind': 'permanent', 'x-warren-original-queue': QUEUE });
    expect(await sys.queueDepth(`${QUEUE}.dlq`)).to.equal(2);
  });

  it('indexes each park once when copies of it arrive again, and leaves the DLQ as it was', async function () {
    const before = indexer.status().duplicates;
    // A replay that selects nothing re-parks every message as an exact copy: each reaches the index a second time.
    const result = await replayParked(sys.amqpUrl, QUEUE, { ids: ['no-such-message'] });
    expect(result).to.include({ replayed: 0, skipped: 2, remaining: 2 });
    await waitFor('both copies seen by the indexer', () => indexer.status().duplicates === before + 2);
    expect((await rows()).map((r) => r.messageId).sort()).to.deep.equal([crashId, badId].sort());
    expect(await sys.queueDepth(PARKED_INDEX_QUEUE)).to.equal(0);
    expect(await sys.queueDepth(`${QUEUE}.dlq`)).to.equal(2);
  });

  it('indexes what was parked while it was stopped once it runs again', async function () {
    await indexer.stop();
    const id = crypto.randomUUID();
    await rawPublish(sys.amqpUrl, 'tweets', 'tweet.created', '[]', {
      messageId: id,
      type: 'tweet.created',
      contentType: 'application/json',
      headers: { 'x-schema-version': '1.0' },
    });
    await waitFor('the park waiting in the index queue', async () => (await sys.queueDepth(PARKED_INDEX_QUEUE)) === 1);
    indexer = new ParkIndexer({ connection, db, log: createLogger('test', 'silent') });
    await waitFor('the park indexed', async () => (await rows()).some((r) => r.messageId === id));
    expect(await rows()).to.have.length(3);
  });
});
