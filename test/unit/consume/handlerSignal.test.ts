import { once } from 'node:events';
import { expect } from 'chai';
import pino from 'pino';
import type { Knex } from 'knex';
import { applyInOneTransaction, HandlerTimeoutError, MessageFailedError } from '../../../src/consume/effectTransaction';
import type { HandlerContext, WorkerDefinition } from '../../../src/consume/handler';
import { createInboxTable, INBOX_TABLE } from '../../../src/db/inbox';
import { newId } from '../../../src/domain/ids';
import type { WarrenMessage } from '../../../src/domain/messages';
import { sqliteTestDatabase, type TestDatabase } from '../../support/databases';

/**
 * The worker contract hands each handler an AbortSignal: past
 * worker.handlerTimeoutMs the handler is told to stop (the signal aborts,
 * its reason the HandlerTimeoutError), not only abandoned, and nothing it
 * wrote is kept.
 */
describe('handler signal: a handler past its timeout is aborted', () => {
  let testDb: TestDatabase;
  const log = pino({ level: 'silent' });

  before(async () => {
    testDb = await sqliteTestDatabase('analytics', {
      create: async (db) => {
        await createInboxTable(db);
        await db.schema.createTable('effects', (t) => t.string('message_id').primary());
      },
    })();
  });
  after(async () => testDb?.close());

  const tweet = (): WarrenMessage<'tweet.created'> => ({
    type: 'tweet.created',
    messageId: newId(),
    schemaVersion: '1.0',
    body: { tweetId: newId(), authorId: newId(), authorHandle: 'ada', text: 'hello', createdAt: new Date().toISOString() },
  });

  function worker(handle: (m: WarrenMessage<'tweet.created'>, tx: Knex.Transaction, ctx: HandlerContext) => Promise<void>): WorkerDefinition {
    return { name: 'analytics', queue: 'analytics.tweets', bindings: [], handles: ['tweet.created'], handle: handle as WorkerDefinition['handle'] };
  }

  const run = (w: WorkerDefinition, m: WarrenMessage, timeoutMs: number) =>
    applyInOneTransaction([m], { db: testDb.db, worker: w, timeoutMs, log, now: () => new Date(), batched: false });

  it('aborts the signal at the timeout with the HandlerTimeoutError as its reason, and the handler that listens stops', async () => {
    let seen: HandlerContext['signal'] | undefined;
    let stoppedAfterMs = -1;
    const started = Date.now();
    const listening = worker(async (m, tx, ctx) => {
      seen = ctx.signal;
      await tx('effects').insert({ message_id: m.messageId });
      // Waits on something slow (a call to another service), and gives up when told.
      await once(ctx.signal, 'abort');
      stoppedAfterMs = Date.now() - started;
      ctx.signal.throwIfAborted();
    });
    const m = tweet();
    const err = await run(listening, m, 150).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(MessageFailedError);
    expect((err as MessageFailedError).error).to.be.instanceOf(HandlerTimeoutError);
    expect(seen!.aborted).to.equal(true);
    expect(seen!.reason).to.be.instanceOf(HandlerTimeoutError);
    expect(stoppedAfterMs).to.be.within(100, 1000);
    // Nothing of it was kept: neither its effect nor its inbox record.
    expect(await testDb.db('effects').where({ message_id: m.messageId })).to.have.length(0);
    expect(await testDb.db(INBOX_TABLE).where({ message_id: m.messageId })).to.have.length(0);
  });

  it('leaves the signal alone for a handler that finishes in time', async () => {
    let seen: HandlerContext['signal'] | undefined;
    const quick = worker(async (m, tx, ctx) => {
      seen = ctx.signal;
      await tx('effects').insert({ message_id: m.messageId });
    });
    const m = tweet();
    const { applied } = await run(quick, m, 5000);
    expect([...applied]).to.deep.equal([m.messageId]);
    expect(seen!.aborted).to.equal(false);
    expect(await testDb.db('effects').where({ message_id: m.messageId })).to.have.length(1);
  });
});
