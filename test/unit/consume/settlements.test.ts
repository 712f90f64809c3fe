import { expect } from 'chai';
import type { Settlement } from '../../../src/consume/delivery';
import { sqliteTestDatabase, type TestDatabase } from '../../support/databases';
import { consumerOnFakes, Gate, handlerLog, recordingWorker, tweetMessage, type ConsumerOnFakes } from '../../support/fakeConsumer';
import { waitFor } from '../../support/wait';

/** The consumer tells its listeners of every delivery once, as it settles: counts and logs are such listeners. */
describe('QueueConsumer settlements', () => {
  let testDb: TestDatabase;
  let harness: ConsumerOnFakes | undefined;

  beforeEach(async () => {
    testDb = await sqliteTestDatabase('analytics', { service: 'analytics' })();
  });
  afterEach(async () => {
    await harness?.stop();
    harness = undefined;
    await testDb.close();
  });

  it('settles each delivery of a failed batch exactly once, the counts agreeing with what was heard', async () => {
    let culprit = '';
    harness = await consumerOnFakes(testDb.db, {
      handle: async (m) => {
        if (m.messageId === culprit) throw new Error('poison');
      },
    });
    const heard: Settlement[] = [];
    harness.consumer.onSettled((s) => heard.push(s));
    await harness.openSubscription();
    const ch = harness.channel();
    harness.confirmChannel().autoConfirm = true;
    const ms = [tweetMessage(), tweetMessage(), tweetMessage({ contentType: 'text/plain' }), tweetMessage()];
    culprit = ms[1]!.messageId;
    for (const m of ms) ch.deliver(m);
    const ids = ms.map((m) => m.messageId);
    await waitFor('every delivery to be acked', () => ids.every((id) => ch.ackedIds().includes(id)), 3000, 5);

    const byId = new Map(heard.map((s) => [String(s.delivery.msg.properties.messageId), s]));
    expect(
      heard.filter((s) => ids.includes(String(s.delivery.msg.properties.messageId))),
      'once each',
    ).to.have.length(ids.length);
    expect(ids.map((id) => byId.get(id)?.outcome)).to.deep.equal(['applied', 'retried', 'parked', 'applied']);
    expect(heard.every((s) => s.end === 'acked' && s.delivery.state === 'acked')).to.equal(true);
    expect(harness.consumer.counts).to.include({ applied: 3, retried: 1, parked: 1, stale: 0 });
  });

  it('hears a delivery whose channel closed as stale, under its outcome, and never acks it', async () => {
    const gate = new Gate();
    harness = await consumerOnFakes(testDb.db, recordingWorker(handlerLog(), gate));
    const heard: Settlement[] = [];
    harness.consumer.onSettled((s) => heard.push(s));
    const ch = harness.channel();
    const m = tweetMessage();
    ch.deliver(m);
    await waitFor('its handler to run', () => gate.started.includes(m.messageId), 2000, 5);
    harness.consume.setConnected(false);
    ch.closeFromBroker();
    gate.open(m.messageId);
    await waitFor('its settlement', () => heard.length === 1, 2000, 5);
    expect(heard[0]).to.include({ end: 'stale', outcome: 'applied', why: 'its channel closed, the broker redelivers it' });
    expect(heard[0]!.delivery.state).to.equal('given-up');
    expect(ch.acks).to.deep.equal([]);
    expect(ch.refusedAcks).to.deep.equal([]);
  });
});
