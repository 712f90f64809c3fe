import { expect } from 'chai';
import sinon from 'sinon';
import type { Knex } from 'knex';
import pino from 'pino';
import { OutboxRelay, type RelayOptions } from '../../../src/outbox/relay';
import type { ConfirmPublisher } from '../../../src/broker/publisher';
import { GroupCommit } from '../../../src/db/groupCommit';
import { claimBatch, countBacklog, enqueueEvents, OUTBOX_TABLE } from '../../../src/outbox/store';
import { buildEvent } from '../../../src/domain/messages';
import { newId } from '../../../src/domain/ids';
import { sqliteTestDatabase, type TestDatabase } from '../../support/databases';
import { waitFor } from '../../support/wait';

describe('outbox relay', () => {
  let testDb: TestDatabase;
  let db: Knex;
  let relay: OutboxRelay | undefined;

  beforeEach(async () => {
    testDb = await sqliteTestDatabase('api', { service: 'api' })();
    db = testDb.db;
  });
  afterEach(async () => {
    await relay?.stop();
    relay = undefined;
    await testDb.close();
  });

  async function write(n: number): Promise<void> {
    const events = Array.from({ length: n }, (_, i) =>
      buildEvent('user.created', { userId: newId(), handle: `h${i}`, displayName: `H ${i}`, createdAt: new Date().toISOString() }, { now: new Date() }),
    );
    await db.transaction((tx) => enqueueEvents(tx, events));
  }

  function fakePublisher(): { publisher: ConfirmPublisher; publishAll: sinon.SinonStub } {
    const publishAll = sinon.stub().callsFake(async (reqs: unknown[]) => reqs.map(() => null));
    // Only the two members the relay uses; the rest of ConfirmPublisher is the broker's business.
    const publisher = { isReady: () => true, publishAll } as unknown as ConfirmPublisher;
    return { publisher, publishAll };
  }

  /** A relay on the test outbox with small batches, a fast poll and a backlog counted every cycle, started. */
  function startRelay(publisher: ConfirmPublisher, opts: Pick<RelayOptions, 'mayPublish' | 'writes'> = {}): OutboxRelay {
    const started = new OutboxRelay({
      db,
      publisher,
      log: pino({ level: 'silent' }),
      batchSize: 100,
      pollIntervalMs: 20,
      claimTimeoutMs: 30_000,
      retainSentMs: 3_600_000,
      countEveryMs: 0,
      ...opts,
    });
    started.start();
    return started;
  }

  it('counts the backlog while it may not publish yet (topology unverified), and publishes once allowed', async () => {
    await write(7);
    const { publisher, publishAll } = fakePublisher();
    let allowed = false;
    relay = startRelay(publisher, { mayPublish: () => allowed });
    // outbox.maxBacklog is judged on this count: it must be there before the broker is.
    await waitFor('the backlog to be counted', () => relay!.pending() === 7, 3000, 10);
    await new Promise((r) => setTimeout(r, 100));
    expect(publishAll.called, 'published before it was allowed').to.equal(false);

    allowed = true;
    relay.wake();
    await waitFor('the rows to be sent', async () => (await countBacklog(db)) === 0, 3000, 10);
    expect(publishAll.callCount).to.equal(1);
    expect(publishAll.firstCall.args[0]).to.have.length(7);
    expect(relay.pending()).to.equal(0);
  });

  it('claims and marks rows through the group commit it is given, publishing only what that committed', async () => {
    await write(5);
    const { publisher, publishAll } = fakePublisher();
    const writes = new GroupCommit(db);
    const claimedBeforePublish: number[] = [];
    publishAll.callsFake(async (reqs: unknown[]) => {
      // The claim is durable by the time the rows are published.
      const claimed = await db(OUTBOX_TABLE).whereNotNull('claimed_by').count<{ n: number }[]>({ n: '*' }).first();
      claimedBeforePublish.push(Number(claimed?.n));
      return reqs.map(() => null);
    });
    relay = startRelay(publisher, { writes: (work) => writes.run(work, { rerunnable: true }) });
    await waitFor('the rows to be sent', async () => (await countBacklog(db)) === 0, 3000, 10);
    expect(claimedBeforePublish).to.deep.equal([5]);
    // A claim and a mark (and the first cycle's prune), each a write of the group commit.
    expect(writes.stats.writes).to.be.at.least(2);
    expect(await db(OUTBOX_TABLE).whereNotNull('claimed_by').count<{ n: number }[]>({ n: '*' }).first()).to.deep.equal({ n: 0 });
  });

  it('takes no fresh claim of another relay over when its own clock runs 30 s fast', async () => {
    await write(3);
    expect(await claimBatch(db, 'other-relay', 10, 30_000)).to.have.length(3);
    const { publisher, publishAll } = fakePublisher();
    const fast = sinon.useFakeTimers({ now: Date.now() + 31_000, toFake: ['Date'] });
    try {
      relay = startRelay(publisher);
      await new Promise((r) => setTimeout(r, 300)); // many polls of 20 ms
      expect(publishAll.called, 'took over an in-flight claim').to.equal(false);
      expect(await db(OUTBOX_TABLE).where({ claimed_by: 'other-relay' }).count<{ n: number }[]>({ n: '*' }).first()).to.deep.equal({ n: 3 });
    } finally {
      fast.restore();
    }
  });

  it('keeps a wake-up that comes after a sleep ended by its timer', async () => {
    const clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const idle = new OutboxRelay({
        db,
        publisher: fakePublisher().publisher,
        log: pino({ level: 'silent' }),
        batchSize: 100,
        pollIntervalMs: 60_000,
        claimTimeoutMs: 30_000,
        retainSentMs: 3_600_000,
      });
      // The poll's wait, reached from outside: the loop is not started, so only these sleeps run.
      const sleep = (ms: number) => (idle as unknown as { sleep(ms: number): Promise<void> }).sleep(ms);
      const timedOut = sleep(100);
      await clock.tickAsync(100);
      await timedOut;
      idle.wake();
      let woke = false;
      void sleep(60_000).then(() => {
        woke = true;
      });
      await clock.tickAsync(0);
      expect(woke, 'the wake-up was swallowed: the event waits a whole poll interval').to.equal(true);
    } finally {
      clock.restore();
    }
  });
});
