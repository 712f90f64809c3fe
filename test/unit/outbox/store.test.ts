import { expect } from 'chai';
import sinon from 'sinon';
import type { Knex } from 'knex';
import { claimBatch, countBacklog, enqueueEvents, markSent, releaseClaims } from '../../../src/outbox/store';
import { buildEvent } from '../../../src/domain/messages';
import { MAX_REQUEST_ID_LENGTH, newId } from '../../../src/domain/ids';
import { testBackends, type TestDatabase } from '../../support/databases';

const backends = testBackends('api', { service: 'api' }, ['sqlite3', 'better-sqlite3']);

const TIMEOUT = 30_000;

for (const backend of backends) {
  describe(`outbox claims on ${backend.name}`, () => {
    let testDb: TestDatabase;
    let db: Knex;

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

    async function write(n: number): Promise<string[]> {
      const events = Array.from({ length: n }, (_, i) =>
        buildEvent('user.created', { userId: newId(), handle: `h${i}`, displayName: `H ${i}`, createdAt: new Date().toISOString() }, { now: new Date() }),
      );
      await db.transaction((tx) => enqueueEvents(tx, events));
      return events.map((e) => e.messageId);
    }

    it('claims the oldest unsent rows in one statement, in the order they were written', async () => {
      const ids = await write(5);
      const rows = await claimBatch(db, 'relay-a', 3, TIMEOUT);
      expect(rows.map((r) => r.message_id)).to.deep.equal(ids.slice(0, 3));
      expect(rows.map((r) => r.seq)).to.deep.equal([...rows.map((r) => r.seq)].sort((a, b) => a - b));
      expect(rows[0]).to.include({ type: 'user.created', exchange: 'user.events', attempts: 0 });
      expect(JSON.parse(rows[0]!.payload)).to.have.property('handle', 'h0');
    });

    it('never gives two relays the same row, even claiming at once', async () => {
      await write(40);
      const [a, b] = await Promise.all([claimBatch(db, 'relay-a', 25, TIMEOUT), claimBatch(db, 'relay-b', 25, TIMEOUT)]);
      const seqsA = a.map((r) => r.seq);
      const seqsB = b.map((r) => r.seq);
      expect(seqsA.filter((s) => seqsB.includes(s))).to.deep.equal([]);
      // Of two claims that picked the same rows at once, the later takes what is left of them (maybe none): the rest waits for the next claim.
      const rest = (await claimBatch(db, 'relay-c', 40, TIMEOUT)).map((r) => r.seq);
      expect(rest.filter((s) => seqsA.includes(s) || seqsB.includes(s))).to.deep.equal([]);
      expect(seqsA.length + seqsB.length + rest.length).to.equal(40);
    });

    it('lets a claim older than the timeout by the database clock be taken over, and only then', async () => {
      await write(2);
      expect(await claimBatch(db, 'dead-relay', 10, TIMEOUT)).to.have.length(2);
      expect(await claimBatch(db, 'relay-b', 10, TIMEOUT)).to.have.length(0);
      // The claim grows old as the database sees it (its relay died half a minute ago).
      await db('outbox').update({ claimed_at: db.raw('claimed_at - ?', [TIMEOUT + 1000]) });
      const taken = await claimBatch(db, 'relay-b', 10, TIMEOUT);
      expect(taken).to.have.length(2);
      // The dead relay's late mark changes nothing: the rows are no longer its own.
      await markSent(
        db,
        'dead-relay',
        taken.map((r) => r.seq),
      );
      expect(await countBacklog(db)).to.equal(2);
      await markSent(
        db,
        'relay-b',
        taken.map((r) => r.seq),
      );
      expect(await countBacklog(db)).to.equal(0);
      await db('outbox').update({ claimed_at: Date.now() - 10 * TIMEOUT });
      expect(await claimBatch(db, 'relay-c', 10, TIMEOUT)).to.have.length(0);
    });

    it('stamps and judges claims by the database clock, whatever the process clock says', async () => {
      await write(2);
      const before = Date.now();
      const fast = sinon.useFakeTimers({ now: before + 3_600_000, toFake: ['Date'] });
      try {
        expect(await claimBatch(db, 'relay-a', 1, TIMEOUT)).to.have.length(1);
        const [row] = await db('outbox').whereNotNull('claimed_by');
        expect(Number(row.claimed_at)).to.be.within(before - 5000, before + 5000);
        // An hour ahead by its own clock, a relay still sees relay-a's claim as fresh.
        const second = await claimBatch(db, 'relay-b', 10, TIMEOUT);
        expect(second.map((r) => r.message_id)).to.not.include(row.message_id);
      } finally {
        fast.restore();
      }
    });

    it('keeps a correlation id as long as the longest request id the API accepts', async () => {
      const longest = 'c'.repeat(MAX_REQUEST_ID_LENGTH);
      const event = buildEvent(
        'user.created',
        { userId: newId(), handle: 'longest', displayName: 'L', createdAt: new Date().toISOString() },
        { now: new Date(), correlationId: longest },
      );
      await db.transaction((tx) => enqueueEvents(tx, [event]));
      const [row] = await claimBatch(db, 'relay-a', 1, TIMEOUT);
      expect(row!.correlation_id).to.equal(longest);
    });

    it('gives a row back after a failed publish, with the error and an attempt counted', async () => {
      await write(2);
      const rows = await claimBatch(db, 'relay-a', 2, TIMEOUT);
      await releaseClaims(db, 'relay-a', [rows[0]!.seq], 'publish returned: NO_ROUTE');
      const again = await claimBatch(db, 'relay-b', 2, TIMEOUT);
      expect(again.map((r) => r.seq)).to.deep.equal([rows[0]!.seq]);
      expect(Number(again[0]!.attempts)).to.equal(1);
      const released = await db('outbox').where({ seq: rows[0]!.seq }).first();
      expect(released.last_error).to.equal('publish returned: NO_ROUTE');
    });
  });
}
