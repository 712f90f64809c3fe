/** @file A replay's or discard's progress record on the console's SQLite database: counts written while it runs, its end, and an action whose process stopped beating read as interrupted. */
import { expect } from 'chai';
import { ActionProgress, findAction, PROGRESS_INTERVAL_MS, STALLED_AFTER_MS } from '../../../src/console/actionProgress';
import { sqliteTestDatabase, type TestDatabase } from '../../support/databases';

describe('console: the progress of an action', function () {
  let database: TestDatabase;
  let clock = Date.parse('2026-03-01T10:00:00Z');
  const now = () => clock;

  before(async function () {
    database = await sqliteTestDatabase('console', { service: 'console' })();
  });

  after(async function () {
    await database?.close();
  });

  it('counts what was taken while the action runs, then keeps its outcome', async function () {
    const progress = await ActionProgress.start(database.db, 'a-1', 'replay', 'otto', 5, now);
    expect(await findAction(database.db, 'a-1', clock)).to.deep.include({ state: 'running', total: 5, taken: 0, done: 0, actor: 'otto', finishedAt: null });
    progress.tookOne();
    progress.tookOne();
    progress.leftStale(1);
    clock += 1000;
    await new Promise((resolve) => setTimeout(resolve, PROGRESS_INTERVAL_MS * 2.5));
    const running = await findAction(database.db, 'a-1', clock);
    expect(running).to.deep.include({ state: 'running', taken: 2, stale: 1, done: 3, updatedAt: new Date(clock).toISOString() });
    await progress.finish({ taken: 3, stale: 1, notFound: 1 });
    const done = await findAction(database.db, 'a-1', clock + STALLED_AFTER_MS * 2);
    expect(done).to.deep.include({ state: 'done', taken: 3, stale: 1, notFound: 1, done: 5, error: null, finishedAt: new Date(clock).toISOString() });
  });

  it('says failed with the error, and interrupted once a running action has not written for a while', async function () {
    const failing = await ActionProgress.start(database.db, 'a-2', 'discard', 'otto', 2, now);
    await failing.finish({ taken: 1, stale: 0, notFound: 0, error: 'broker closed the channel' });
    expect(await findAction(database.db, 'a-2', clock)).to.deep.include({ state: 'failed', taken: 1, error: 'broker closed the channel' });

    const started = clock;
    const abandoned = await ActionProgress.start(database.db, 'a-3', 'replay', 'otto', 2, () => started);
    expect((await findAction(database.db, 'a-3', started + STALLED_AFTER_MS))!.state).to.equal('running');
    expect((await findAction(database.db, 'a-3', started + STALLED_AFTER_MS + 1))!.state).to.equal('interrupted');
    await abandoned.finish({ taken: 0, stale: 0, notFound: 0 });
    expect(await findAction(database.db, 'no-such-action', clock)).to.equal(undefined);
  });
});
