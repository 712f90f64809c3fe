/**
 * @file Several relays on one outbox: each row is published once, and on
 * PostgreSQL a relay passes over rows another relay's open claim holds
 * instead of waiting for it (FOR UPDATE SKIP LOCKED). Runs on SQLite, and on
 * PostgreSQL when WARREN_TEST_PG_URL names one.
 */
import { expect } from 'chai';
import type { Knex } from 'knex';
import pino from 'pino';
import { OutboxRelay } from '../../../src/outbox/relay';
import type { ConfirmPublisher, PublishRequest } from '../../../src/broker/publisher';
import { GroupCommit } from '../../../src/db/groupCommit';
import { claimBatch, countBacklog, enqueueEvents } from '../../../src/outbox/store';
import { buildEvent } from '../../../src/domain/messages';
import { newId } from '../../../src/domain/ids';
import { testBackends, type TestDatabase } from '../../support/databases';
import { waitFor } from '../../support/wait';

const backends = testBackends('api', { service: 'api' });

for (const backend of backends) {
  describe(`competing relays on ${backend.name}`, function () {
    this.timeout(60_000);
    let testDb: TestDatabase;
    let db: Knex;
    const relays: OutboxRelay[] = [];

    before(async () => {
      testDb = await backend.open();
      db = testDb.db;
    });
    after(async () => {
      await testDb?.close();
    });
    beforeEach(async () => {
      await db('outbox').delete();
    });
    afterEach(async () => {
      await Promise.all(relays.splice(0).map((r) => r.stop()));
    });

    async function write(n: number): Promise<string[]> {
      const events = Array.from({ length: n }, (_, i) =>
        buildEvent('user.created', { userId: newId(), handle: `h${i}`, displayName: `H ${i}`, createdAt: new Date().toISOString() }, { now: new Date() }),
      );
      await db.transaction((tx) => enqueueEvents(tx, events));
      return events.map((e) => e.messageId);
    }

    /** A broker that confirms after a moment, recording every message id it was given and by which relay. */
    function recordingPublisher(published: Map<string, number>, by: number[], index: number): ConfirmPublisher {
      const publishAll = async (reqs: PublishRequest[]) => {
        await new Promise((r) => setTimeout(r, 3));
        for (const req of reqs) published.set(req.properties.messageId, (published.get(req.properties.messageId) ?? 0) + 1);
        by[index]! += reqs.length;
        return reqs.map(() => null);
      };
      // Only the two members the relay uses; the rest of ConfirmPublisher is the broker's business.
      return { isReady: () => true, publishAll } as unknown as ConfirmPublisher;
    }

    it('publishes every row once with two relays draining one outbox while rows keep coming', async () => {
      const published = new Map<string, number>();
      const by = [0, 0];
      for (const index of [0, 1]) {
        const relay = new OutboxRelay({
          db,
          writes: (
            (writes) => (work) =>
              writes.run(work, { rerunnable: true })
          )(new GroupCommit(db)),
          publisher: recordingPublisher(published, by, index),
          log: pino({ level: 'silent' }),
          batchSize: 50,
          pollIntervalMs: 10,
          claimTimeoutMs: 30_000,
          retainSentMs: 3_600_000,
          countEveryMs: 0,
        });
        relay.start();
        relays.push(relay);
      }
      const ids: string[] = [];
      for (let i = 0; i < 20; i++) {
        ids.push(...(await write(100)));
        for (const r of relays) r.wake();
      }
      await waitFor('every row to be sent', async () => (await countBacklog(db)) === 0, 30_000, 20);
      expect(published.size).to.equal(ids.length);
      expect(
        [...published.entries()].filter(([, n]) => n > 1),
        'published twice',
      ).to.deep.equal([]);
      expect(
        ids.filter((id) => !published.has(id)),
        'never published',
      ).to.deep.equal([]);
      expect(by[0]! + by[1]!).to.equal(ids.length);
    });

    if (backend.name === 'PostgreSQL') {
      it('passes over the rows another relay’s uncommitted claim holds and takes the next, without waiting for it', async () => {
        const ids = await write(30);
        const trx = await db.transaction();
        try {
          const held = await claimBatch(trx, 'relay-a', 10, 30_000);
          expect(held.map((r) => r.message_id)).to.deep.equal(ids.slice(0, 10));
          const started = Date.now();
          const next = await Promise.race([
            claimBatch(db, 'relay-b', 10, 30_000),
            new Promise<'waited'>((resolve) => setTimeout(() => resolve('waited'), 2000)),
          ]);
          expect(next, 'relay-b waited for relay-a').to.not.equal('waited');
          expect((next as { message_id: string }[]).map((r) => r.message_id)).to.deep.equal(ids.slice(10, 20));
          expect(Date.now() - started).to.be.below(2000);
        } finally {
          await trx.rollback();
        }
        // relay-a's claim rolled back: its rows are claimable again, relay-b's are not.
        expect((await claimBatch(db, 'relay-c', 30, 30_000)).map((r) => r.message_id)).to.deep.equal([...ids.slice(0, 10), ...ids.slice(20)]);
      });
    }
  });
}
