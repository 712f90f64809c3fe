import Database from 'better-sqlite3';
import { expect } from 'chai';
import type { Knex } from 'knex';
import sinon from 'sinon';
import { INBOX_TABLE } from '../../../src/db/inbox';
import { sqliteTestDatabase, type TestDatabase } from '../../support/databases';
import { consumerOnFakes, Gate, handlerLog, recordingWorker, tweetMessage, type ConsumerOnFakes } from '../../support/fakeConsumer';
import { waitFor } from '../../support/wait';

/**
 * The consuming invariants of QueueConsumer (src/consume/consumer.ts), each on
 * a fake broker (test/support/fakeAmqp.ts) and a real SQLite file for the
 * effects. The fault suite proves the same on the real RabbitMQ.
 */
describe('QueueConsumer invariants, on a fake broker', () => {
  let testDb: TestDatabase;
  let harness: ConsumerOnFakes | undefined;

  beforeEach(async () => {
    testDb = await sqliteTestDatabase('analytics', { service: 'analytics' })();
  });
  afterEach(async () => {
    sinon.restore();
    await harness?.stop();
    harness = undefined;
    await testDb.close();
  });

  const inboxIds = async (db: Knex): Promise<string[]> =>
    (await db(INBOX_TABLE).where({ consumer: 'analytics' }).select('message_id')).map((r: { message_id: string }) => r.message_id);
  /** The file a SQLite test database lives in (knex types its client's config loosely). */
  const sqliteFile = (db: Knex): string => (db.client as { config: { connection: { filename: string } } }).config.connection.filename;
  const settle = () => new Promise((r) => setTimeout(r, 30));

  describe('ack after commit', () => {
    it('nothing is acked before its transaction committed', async () => {
      const gate = new Gate();
      harness = await consumerOnFakes(testDb.db, recordingWorker(handlerLog(), gate));
      // Another connection to the same file sees only what committed (WAL); better-sqlite3 asks it synchronously, at the ack.
      const reader = new Database(sqliteFile(testDb.db), { readonly: true });
      const committed = (id: string) => reader.prepare(`SELECT count(*) AS n FROM ${INBOX_TABLE} WHERE message_id = ?`).get(id) as { n: number };
      const seenAtAck: number[] = [];
      const ch = harness.channel();
      const ack = ch.ack.bind(ch);
      ch.ack = (msg, allUpTo) => {
        seenAtAck.push(committed(String(msg.properties.messageId)).n);
        ack(msg, allUpTo);
      };
      try {
        const m = tweetMessage();
        ch.deliver(m);
        await waitFor('the handler to run', () => gate.started.includes(m.messageId), 2000, 5);
        await settle();
        expect(ch.acks, 'nothing acked while its transaction is open').to.deep.equal([]);

        gate.open(m.messageId);
        await waitFor('the ack', () => ch.ackedIds().includes(m.messageId), 2000, 5);
        expect(seenAtAck, 'its inbox record was committed when the ack was sent').to.deep.equal([1]);
      } finally {
        reader.close();
      }
    });

    /** A message whose handler fails, delivered, and its retry copy sent (not confirmed yet). */
    async function failingMessageWithCopySent() {
      harness = await consumerOnFakes(testDb.db, {
        handle: async () => {
          throw new Error('the store is away');
        },
      });
      const ch = harness.channel();
      const publishCh = harness.confirmChannel();
      const m = tweetMessage();
      ch.deliver(m);
      await waitFor('its retry copy', () => publishCh.sent.length === 1, 2000, 5);
      return { ch, publishCh, m, consumer: harness.consumer };
    }

    it('a failed message is acked only once its retry copy is confirmed', async () => {
      const { ch, publishCh, m, consumer } = await failingMessageWithCopySent();
      await settle();
      expect(ch.unacked(), 'held unacked while its copy is unconfirmed').to.deep.equal([m.messageId]);

      publishCh.confirmNext();
      await waitFor('the ack', () => ch.ackedIds().includes(m.messageId), 2000, 5);
      expect(publishCh.sent[0]).to.include({ exchange: 'warren.delay.5s', routingKey: 'analytics.tweets', messageId: m.messageId });
      expect(consumer.counts).to.include({ retried: 1, applied: 0 });
    });

    it('a retry copy that the broker returns leaves the original unacked', async () => {
      const { ch, publishCh, m, consumer } = await failingMessageWithCopySent();
      // Unroutable under mandatory: returned, then confirmed all the same.
      publishCh.returnNext('NO_ROUTE');
      await waitFor('the copy to be sent again', () => publishCh.sent.length === 2, 3000, 10);
      expect(ch.acks, 'a returned copy is no copy: the original stays').to.deep.equal([]);
      expect(ch.unacked()).to.deep.equal([m.messageId]);
      expect(consumer.status()).to.include({ consuming: true, ready: false });
      expect(consumer.status().detail).to.match(/cannot retry or park \(1 message\(s\) held unacked\).*NO_ROUTE/);

      publishCh.confirmNext();
      await waitFor('the ack', () => ch.ackedIds().includes(m.messageId), 2000, 5);
      expect(consumer.counts).to.include({ retried: 1 });
      expect(consumer.status()).to.include({ ready: true });
    });

    it('a park copy that the broker nacks leaves the original unacked', async () => {
      harness = await consumerOnFakes(testDb.db, { handle: async () => undefined });
      const ch = harness.channel();
      const publishCh = harness.confirmChannel();
      // Not JSON: parked at once.
      const m = tweetMessage({ contentType: 'text/plain' });
      ch.deliver(m);
      await waitFor('its park copy', () => publishCh.sent.length === 1, 2000, 5);
      expect(publishCh.sent[0]).to.include({ exchange: 'warren.dlx', routingKey: 'analytics.tweets' });
      // A full DLQ (reject-publish) nacks.
      publishCh.nackNext();
      await waitFor('the copy to be sent again', () => publishCh.sent.length === 2, 3000, 10);
      expect(ch.acks).to.deep.equal([]);
      expect(ch.unacked()).to.deep.equal([m.messageId]);

      publishCh.confirmNext();
      await waitFor('the ack', () => ch.ackedIds().includes(m.messageId), 2000, 5);
      expect(harness.consumer.counts).to.include({ parked: 1 });
    });
  });

  describe('a failed batch', () => {
    /** A table whose foreign key is checked only at COMMIT: a batch that writes an orphan fails there, not before. */
    const createDeferredTable = (db: Knex) =>
      db.raw(`CREATE TABLE tweet_marks (message_id TEXT PRIMARY KEY, tweet_id TEXT REFERENCES tweet_marks(message_id) DEFERRABLE INITIALLY DEFERRED)`);

    it('a batch whose COMMIT fails is not acked and its messages rerun alone', async () => {
      await createDeferredTable(testDb.db);
      const log = handlerLog();
      const order: string[] = [];
      let batchesFail = false;
      harness = await consumerOnFakes(testDb.db, {
        handle: async (m, tx) => {
          log.alone.push(m.messageId);
          await tx('tweet_marks').insert({ message_id: m.messageId, tweet_id: null });
          order.push(`ran ${m.messageId}`);
        },
        handleBatch: async (ms, tx) => {
          log.batches.push(ms.map((m) => m.messageId));
          // Every statement succeeds; the orphans fail the COMMIT.
          await tx('tweet_marks').insert(ms.map((m) => ({ message_id: m.messageId, tweet_id: batchesFail ? 'no such mark' : null })));
        },
      });
      await harness.openSubscription();
      batchesFail = true;
      const ch = harness.channel();
      const ack = ch.ack.bind(ch);
      ch.ack = (msg, allUpTo) => {
        order.push(`ack ${String(msg.properties.messageId)}`);
        ack(msg, allUpTo);
      };

      const ms = [tweetMessage(), tweetMessage(), tweetMessage()];
      for (const m of ms) ch.deliver(m);
      const ids = ms.map((m) => m.messageId);
      await waitFor('every delivery to be acked', () => ids.every((id) => ch.ackedIds().includes(id)), 3000, 5);

      expect(log.batches.at(-1), 'they were delivered together: one batch').to.deep.equal(ids);
      expect(log.alone, 'then each ran again alone').to.deep.equal(ids);
      // Each acked after its own run alone, never as the batch.
      expect(order).to.deep.equal(ids.flatMap((id) => [`ran ${id}`, `ack ${id}`]));
      expect(
        ch.acks.every((a) => a.messageIds.length === 1),
        'one ack per message',
      ).to.equal(true);
      const marks = (await testDb.db('tweet_marks').select('message_id', 'tweet_id')) as { message_id: string; tweet_id: string | null }[];
      expect(
        marks.filter((r) => ids.includes(r.message_id)).map((r) => r.tweet_id),
        'the failed batch kept nothing',
      ).to.deep.equal([null, null, null]);
      expect(harness.consumer.counts).to.include({ retried: 0, parked: 0, stale: 0 });
    });

    it('a batch whose handler fails retries its culprit alone and applies its neighbours alone', async () => {
      const log = handlerLog();
      let culprit = '';
      harness = await consumerOnFakes(testDb.db, {
        handle: async (m) => {
          log.alone.push(m.messageId);
          if (m.messageId === culprit) throw new Error('poison');
        },
      });
      await harness.openSubscription();
      log.alone.length = 0; // the first delivery's
      const ch = harness.channel();
      const publishCh = harness.confirmChannel();
      publishCh.autoConfirm = true;
      const ms = [tweetMessage(), tweetMessage(), tweetMessage()];
      culprit = ms[1]!.messageId;
      for (const m of ms) ch.deliver(m);
      const ids = ms.map((m) => m.messageId);
      await waitFor('every delivery to be acked', () => ids.every((id) => ch.ackedIds().includes(id)), 3000, 5);

      // Without handleBatch, one transaction runs `handle` for each in turn: the culprit is named.
      expect(log.alone.slice(0, 2), 'the batch ran up to its culprit').to.deep.equal([ids[0], ids[1]]);
      expect(
        publishCh.sent.map((s) => s.messageId),
        'only the culprit went to its retry',
      ).to.deep.equal([culprit]);
      expect((await inboxIds(testDb.db)).filter((id) => ids.includes(id)).sort(), 'the neighbours applied, once each').to.deep.equal([ids[0], ids[2]].sort());
      expect(harness.consumer.counts).to.include({ retried: 1 });
    });

    const handlerTimeoutMs = 1000;
    const batchDeadlineMs = 5000;

    /**
     * A consumer whose batches, once the subscription is open, fail after
     * seeming (only Date is faked) to take `batchTookMs`; two messages delivered
     * together, and every one of them acked.
     */
    async function failedBatch(batchTookMs: number) {
      const log = handlerLog();
      const clock = sinon.useFakeTimers({ now: Date.now(), toFake: ['Date'] });
      let batchesFail = false;
      harness = await consumerOnFakes(
        testDb.db,
        {
          handle: async (m) => void log.alone.push(m.messageId),
          handleBatch: async (ms) => {
            log.batches.push(ms.map((m) => m.messageId));
            if (!batchesFail) return;
            clock.tick(batchTookMs);
            throw new Error('SQLITE_BUSY: database is locked');
          },
        },
        { handlerTimeoutMs, batchDeadlineMs },
      );
      harness.confirmChannel().autoConfirm = true;
      await harness.openSubscription();
      batchesFail = true;
      const ch = harness.channel();
      const ms = [tweetMessage(), tweetMessage()];
      for (const m of ms) ch.deliver(m);
      const ids = ms.map((m) => m.messageId);
      // With Date faked and moved on, waitFor's own deadline means little: mocha's timeout bounds it.
      await waitFor('every delivery to be acked', () => ids.every((id) => ch.ackedIds().includes(id)), 60_000, 5);
      return { log, ids, publishCh: harness.confirmChannel(), counts: harness.consumer.counts };
    }

    it('a failed batch sends to their retry, unrun, the messages whose run alone would end past the batch deadline', async () => {
      // 4.5 s taken: a run alone (up to 1 s) would end past 5 s from arrival.
      const { log, ids, publishCh, counts } = await failedBatch(batchDeadlineMs - handlerTimeoutMs + 500);
      expect(log.alone, 'none ran alone').to.deep.equal([]);
      expect(publishCh.sent.map((s) => s.messageId)).to.deep.equal(ids);
      for (const copy of publishCh.sent) {
        expect(copy.exchange).to.equal('warren.delay.5s');
        const headers = copy.options.headers as Record<string, unknown>;
        expect(String(headers['x-warren-error'])).to.match(/^TransientError: not run: its batch failed.*SQLITE_BUSY/);
        expect(headers['x-warren-attempts'], 'counts as an attempt').to.equal(1);
      }
      expect(counts).to.include({ retried: 2, applied: 1 });
    });

    it('a failed batch reruns alone the messages whose run alone ends within the batch deadline', async () => {
      // 3.5 s taken: a run alone of up to 1 s still ends within 5 s of arrival.
      const { log, ids, publishCh } = await failedBatch(batchDeadlineMs - handlerTimeoutMs - 500);
      expect(log.alone).to.deep.equal(ids);
      expect(publishCh.sent, 'no retry copies').to.deep.equal([]);
    });
  });

  describe("the delivery's own channel", () => {
    it('a delivery whose channel closed is never acked on the new channel', async () => {
      const gate = new Gate();
      harness = await consumerOnFakes(testDb.db, recordingWorker(handlerLog(), gate));
      const first = harness.channel();
      const stale = tweetMessage();
      first.deliver(stale);
      await waitFor('its handler to run', () => gate.started.includes(stale.messageId), 2000, 5);

      // The connection drops and comes back: the broker requeued `stale`; a new channel numbers its tags from 1 again.
      harness.consume.setConnected(false);
      first.closeFromBroker();
      harness.consume.setConnected(true);
      await waitFor('a new channel subscribed', () => harness!.consume.channels.length === 2 && harness!.consumer.status().consuming, 2000, 5);
      const second = harness.channel();
      const fresh = tweetMessage();
      const freshDelivery = second.deliver(fresh);
      expect(freshDelivery.fields.deliveryTag, 'the same tag as the stale delivery').to.equal(1);

      gate.open(stale.messageId);
      await waitFor('the stale delivery to be settled one way or the other', () => harness!.consumer.counts.stale === 1 || second.acks.length > 0, 2000, 5);
      expect(second.acks, 'the stale tag settled nothing on the new channel').to.deep.equal([]);
      expect(harness.consumer.counts.stale).to.equal(1);
      await waitFor('the fresh handler to run', () => gate.started.includes(fresh.messageId), 6000, 5);
      expect(second.unacked()).to.deep.equal([fresh.messageId]);

      gate.open(fresh.messageId);
      await waitFor('the fresh ack', () => second.ackedIds().includes(fresh.messageId), 2000, 5);
      expect(second.ackedIds()).to.deep.equal([fresh.messageId]);
      expect(second.unknownTagAcks).to.deep.equal([]);
    });

    it('a delivery whose channel closed is not acked at all, and is counted as stale', async () => {
      const gate = new Gate();
      harness = await consumerOnFakes(testDb.db, recordingWorker(handlerLog(), gate));
      const ch = harness.channel();
      const m = tweetMessage();
      ch.deliver(m);
      await waitFor('its handler to run', () => gate.started.includes(m.messageId), 2000, 5);
      harness.consume.setConnected(false);
      expect(
        ch.closeFromBroker().map((r) => r.properties.messageId),
        'requeued by the broker',
      ).to.deep.equal([m.messageId]);

      gate.open(m.messageId);
      await waitFor('the stale outcome', () => harness!.consumer.counts.stale === 1, 2000, 5);
      expect(ch.refusedAcks, 'no ack was even tried on the closed channel').to.deep.equal([]);
      expect(ch.acks).to.deep.equal([]);
      // Its effect committed: the redelivery will be a duplicate.
      expect(await inboxIds(testDb.db)).to.deep.equal([m.messageId]);
    });

    it('a batch is acked together on the channel it arrived on: one multiple ack up to its last tag', async () => {
      harness = await consumerOnFakes(testDb.db, recordingWorker(handlerLog()));
      await harness.openSubscription();
      const ch = harness.channel();
      const ms = [tweetMessage(), tweetMessage()];
      const deliveries = ms.map((m) => ch.deliver(m));
      await waitFor('both acks', () => ms.every((m) => ch.ackedIds().includes(m.messageId)), 2000, 5);
      // A batch acked together: one multiple ack up to its last tag.
      expect(ch.acks.at(-1)).to.deep.equal({ deliveryTag: deliveries[1]!.fields.deliveryTag, multiple: true, messageIds: ms.map((m) => m.messageId) });
      expect(ch.unacked()).to.deep.equal([]);
      expect(harness.consume.channels).to.have.length(1);
    });
  });

  describe('redeliveries', () => {
    it('a redelivered suspect runs alone, its neighbours batched', async () => {
      const gate = new Gate(false);
      const log = handlerLog();
      harness = await consumerOnFakes(testDb.db, recordingWorker(log, gate));
      await harness.openSubscription();
      const ch = harness.channel();
      const openTag = ch.activeConsumers()[0]!;
      // Sent together by the open subscription: the second came back from a consumer that died holding it.
      const [b, suspect, c, d] = [tweetMessage(), tweetMessage({ redelivered: true }), tweetMessage(), tweetMessage()] as const;
      const neighbours = [b, c, d].map((m) => m.messageId);
      gate.hold(...neighbours, suspect.messageId);
      for (const m of [b, suspect, c, d]) ch.deliver(m, openTag);

      await waitFor('the neighbours to run', () => neighbours.every((id) => gate.started.includes(id)), 2000, 5);
      expect(log.batches.at(-1), 'the neighbours batched').to.deep.equal(neighbours);
      await settle();
      expect(gate.started, 'the suspect waits for its neighbours').to.not.include(suspect.messageId);
      expect(ch.prefetches.at(-1), 'the subscription stepped down to one at a time').to.equal(1);

      for (const id of neighbours) gate.open(id);
      await waitFor('the suspect to run', () => gate.started.includes(suspect.messageId), 2000, 5);
      expect(log.alone, 'the suspect alone, in a transaction of its own').to.deep.equal([suspect.messageId]);
      gate.open(suspect.messageId);
      await waitFor('every delivery to be acked', () => [...neighbours, suspect.messageId].every((id) => ch.ackedIds().includes(id)), 3000, 5);
      expect(log.overlaps, 'nothing ran beside the suspect').to.equal(0);
      expect(harness.consumer.counts).to.include({ redelivered: 1, applied: 5 });
    });
  });
});
