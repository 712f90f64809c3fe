/** @file
 * The indexer on the fake broker and a real SQLite file: a copy is acked
 * only after its park committed, on the channel it came on; a copy of a
 * park already indexed adds nothing; while the database refuses, copies
 * stay unacked and are indexed once it answers; a closed channel's copies
 * are never acked (the broker gave them back).
 */
import { expect } from 'chai';
import sinon from 'sinon';
import type { Knex } from 'knex';
import { ParkIndexer } from '../../../src/console/indexer';
import { PARKED_INDEX_QUEUE } from '../../../src/console/parkRecord';
import { PARKED_TABLE } from '../../../src/db/migrations/console';
import { createLogger } from '../../../src/log';
import { fakeConnection, type FakeBroker } from '../../support/fakeAmqp';
import { sqliteTestDatabase, type TestDatabase } from '../../support/databases';
import { brokerPark, warrenPark } from '../../support/parks';
import { waitFor } from '../../support/wait';
import type { IndexedDelivery } from '../../../src/console/parkRecord';

const asMessage = (d: IndexedDelivery) => ({ content: d.content, exchange: 'warren.dlx', routingKey: d.routingKey, properties: d.properties });

describe('console: the indexer', function () {
  let database: TestDatabase;
  let db: Knex;
  let broker: FakeBroker;
  let indexer: ParkIndexer;

  const count = async () => Number(((await db(PARKED_TABLE).count({ n: '*' })) as { n: number | string }[])[0]!.n);

  beforeEach(async function () {
    database = await sqliteTestDatabase('console', { service: 'console' })();
    db = database.db;
    broker = fakeConnection();
    indexer = new ParkIndexer({ connection: broker.connection, db, log: createLogger('test', 'silent'), prefetch: 50 });
    await waitFor('the indexer to subscribe', () => broker.channels[0]?.consumes.length === 1);
  });

  afterEach(async function () {
    sinon.restore();
    await indexer.stop();
    await database.close();
  });

  it('subscribes to the index queue with its prefetch and acks each copy once its park is committed', async function () {
    const ch = broker.latest();
    expect(ch.consumes[0]!.queue).to.equal(PARKED_INDEX_QUEUE);
    expect(ch.prefetches).to.deep.equal([50]);
    const a = warrenPark();
    const b = brokerPark();
    ch.deliver(asMessage(a));
    ch.deliver(asMessage(b));
    await waitFor('both acked', () => ch.ackedIds().length === 2);
    expect(await count()).to.equal(2);
    expect(ch.ackedIds().sort()).to.deep.equal([a.properties.messageId, b.properties.messageId].sort());
    expect(indexer.status()).to.include({ consuming: true, indexed: 2, duplicates: 0 });
  });

  it('indexes a park once however many copies of it arrive, together or apart', async function () {
    const ch = broker.latest();
    const park = warrenPark();
    ch.deliver(asMessage(park));
    ch.deliver(asMessage(park));
    await waitFor('both copies acked', () => ch.ackedIds().length === 2);
    ch.deliver({ ...asMessage(park), redelivered: true });
    await waitFor('the third acked', () => ch.ackedIds().length === 3);
    expect(await count()).to.equal(1);
    expect(indexer.status()).to.include({ indexed: 1, duplicates: 2 });
  });

  it('keeps copies unacked while the database refuses, and indexes them once it answers', async function () {
    const ch = broker.latest();
    const failing = sinon.stub(db, 'transaction').rejects(new Error('SQLITE_BUSY: database is locked'));
    ch.deliver(asMessage(warrenPark()));
    await waitFor('the failure seen', () => indexer.status().detail.includes('SQLITE_BUSY'));
    expect(ch.ackedIds()).to.deep.equal([]);
    expect(ch.unacked()).to.have.length(1);
    failing.restore();
    ch.deliver(asMessage(warrenPark()));
    await waitFor('both acked', () => ch.ackedIds().length === 2, 5000);
    expect(await count()).to.equal(2);
    expect(indexer.status().detail).to.equal(`consuming ${PARKED_INDEX_QUEUE}`);
  });

  it('acks nothing on a channel that closed before its copies committed, and takes the redelivered copies on the next', async function () {
    const ch = broker.latest();
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const original = db.transaction.bind(db);
    sinon.stub(db, 'transaction').callsFake(((work: (tx: Knex.Transaction) => Promise<unknown>) => gate.then(() => original(work))) as typeof db.transaction);
    const park = warrenPark();
    ch.deliver(asMessage(park));
    await new Promise((r) => setTimeout(r, 20));
    const requeued = ch.closeFromBroker();
    expect(requeued).to.have.length(1);
    release();
    await waitFor('a new channel subscribed', () => broker.channels.length === 2 && broker.latest().consumes.length === 1, 5000);
    sinon.restore();
    const next = broker.latest();
    next.deliver({ ...asMessage(park), redelivered: true });
    await waitFor('acked on the new channel', () => next.ackedIds().length === 1);
    expect(ch.acks).to.deep.equal([]);
    expect(ch.refusedAcks).to.deep.equal([]);
    expect(await count()).to.equal(1);
  });
});
