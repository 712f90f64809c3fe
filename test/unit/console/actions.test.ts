/** @file
 * The console's replay and discard over its index, on SQLite, with a fake
 * DLQ standing in for the broker (the real one: test/integration/console-actions.test.ts):
 * what is selected, the dry run, the cap, the rows marked, the late-replay
 * refusal, what is gone, and the audit log of each.
 */
import { expect } from 'chai';
import type { Knex } from 'knex';
import { discardSelected, discardBody, replayBody, replaySelected, type ActionDeps } from '../../../src/console/actions';
import { listAudit } from '../../../src/console/audit';
import { indexParks } from '../../../src/console/parkedIndex';
import { parkRecord, type IndexedDelivery } from '../../../src/console/parkRecord';
import { FakeDlqs } from '../../support/fakeDlqs';
import type { Operator } from '../../../src/console/operatorTokens';
import { PARKED_TABLE } from '../../../src/db/migrations/console';
import { ConflictError } from '../../../src/domain/errors';
import { sqliteTestDatabase, type TestDatabase } from '../../support/databases';
import { warrenPark } from '../../support/parks';

const otto: Operator = { id: 'o1', name: 'otto', role: 'operator' };
const NOW = Date.parse('2026-01-10T00:00:00Z');

describe('console: replay and discard over the index', function () {
  let database: TestDatabase;
  let db: Knex;
  let dlqs: FakeDlqs;
  let deps: ActionDeps;
  const parks: Record<string, IndexedDelivery> = {};

  const rowOf = async (name: string) =>
    (await db(PARKED_TABLE)
      .where({ message_id: parks[name]!.properties.messageId as string })
      .first()) as Record<string, unknown>;

  beforeEach(async function () {
    database = await sqliteTestDatabase('console', { service: 'console' })();
    db = database.db;
    dlqs = new FakeDlqs();
    deps = {
      db,
      amqpUrl: 'amqp://unused',
      maxPerAction: 3,
      inboxRetentionDays: 14,
      publishTimeoutMs: 1000,
      now: () => NOW,
      dlq: { replay: dlqs.take, discard: dlqs.take },
    };
    const recent = (hours: number) => new Date(NOW - hours * 3_600_000).toISOString();
    Object.assign(parks, {
      a: warrenPark({ error: 'PermanentError: bad A', lastFailure: recent(1), headers: {} }),
      b: warrenPark({ error: 'PermanentError: bad B', lastFailure: recent(2) }),
      n: warrenPark({ queue: 'notifications.user-events', error: 'PermanentError: bad N', lastFailure: recent(3) }),
      again: warrenPark({ error: 'PermanentError: bad again', lastFailure: recent(4), headers: { 'x-warren-replay-count': 1 } }),
    });
    // Recent messages: their AMQP timestamp too (parkedSince takes the earliest).
    for (const p of Object.values(parks)) p.properties.timestamp = Math.floor((NOW - 5 * 3_600_000) / 1000);
    for (const p of Object.values(parks)) dlqs.park(p);
    await indexParks(db, Object.values(parks).map(parkRecord), NOW);
  });

  afterEach(() => database.close());

  it('counts a dry run per queue without taking anything, and a filter skips what failed again after a replay unless asked', async function () {
    const dry = await replaySelected(deps, otto, replayBody.parse({ filter: { reason: 'bad' }, dryRun: true }));
    expect(dry).to.include({ dryRun: true, selected: 3, taken: 0 });
    expect(dry.byQueue).to.deep.equal({ 'analytics.tweets': 2, 'notifications.user-events': 1 });
    expect(dlqs.calls).to.deep.equal([]);
    expect((await replaySelected(deps, otto, replayBody.parse({ filter: { reason: 'bad' }, dryRun: true, includeFailedAgain: true }))).selected).to.equal(4);
    expect(await listAudit(db, { limit: 10 })).to.deep.equal([]);
  });

  it('refuses a selection over the cap before touching a DLQ', async function () {
    let refused: unknown;
    try {
      await replaySelected(deps, otto, replayBody.parse({ filter: { reason: 'bad' }, includeFailedAgain: true }));
    } catch (err) {
      refused = err;
    }
    expect(refused).to.be.instanceOf(ConflictError);
    expect(dlqs.calls).to.deep.equal([]);
  });

  it('replays each queue once with this replay id, takes exactly the selected parks, marks their rows and writes the audit log', async function () {
    const res = await replaySelected(deps, otto, replayBody.parse({ filter: { reason: 'bad' } }));
    expect(res).to.include({ selected: 3, taken: 3, stale: 0, notFound: 0 });
    expect(dlqs.calls.map((c) => c.queue).sort()).to.deep.equal(['analytics.tweets', 'notifications.user-events']);
    expect(dlqs.calls.every((c) => c.opts.replayId === res.actionId && c.opts.staleBefore !== undefined)).to.equal(true);
    expect(dlqs.queues.get('analytics.tweets')!.map((m) => m.properties.messageId)).to.deep.equal([parks.again!.properties.messageId]);
    for (const name of ['a', 'b', 'n']) expect(await rowOf(name), name).to.include({ status: 'replayed', status_by: 'otto', status_action: res.actionId });
    expect(await rowOf('again')).to.include({ status: 'parked' });
    const [entry] = await listAudit(db, { limit: 1 });
    expect(entry).to.deep.include({ actor: 'otto', role: 'operator', action: 'replay', count: 3, outcome: 'ok' });
    expect(entry!.selection).to.deep.include({ filter: { reason: 'bad' }, allowStale: false });
  });

  it('leaves a message older than the inbox retention parked unless told, and marks what its DLQ no longer holds as gone', async function () {
    const old = warrenPark({ lastFailure: new Date(NOW - 30 * 86_400_000).toISOString() });
    old.properties.timestamp = Math.floor((NOW - 30 * 86_400_000) / 1000);
    dlqs.park(old);
    await indexParks(db, [parkRecord(old)], NOW);
    const row = (await db(PARKED_TABLE)
      .where({ message_id: old.properties.messageId as string })
      .first('id')) as { id: string };
    expect(await replaySelected(deps, otto, replayBody.parse({ ids: [row.id] }))).to.include({ taken: 0, stale: 1, notFound: 0 });
    expect((await db(PARKED_TABLE).where({ id: row.id }).first('status')) as { status: string }).to.deep.equal({ status: 'parked' });
    expect(await replaySelected(deps, otto, replayBody.parse({ ids: [row.id], allowStale: true }))).to.include({ taken: 1, stale: 0 });

    // Purged behind the console's back.
    dlqs.queues.set('notifications.user-events', []);
    const nRow = (await rowOf('n')).id as string;
    expect(await replaySelected(deps, otto, replayBody.parse({ ids: [nRow] }))).to.include({ taken: 0, notFound: 1 });
    expect(await rowOf('n')).to.include({ status: 'gone' });
  });

  it('discards the selected messages with the reason in the audit log; a discard needs a reason', async function () {
    const ids = [(await rowOf('a')).id as string, (await rowOf('b')).id as string];
    const res = await discardSelected(deps, otto, discardBody.parse({ ids, reason: 'test data' }));
    expect(res).to.include({ selected: 2, taken: 2 });
    expect(dlqs.calls[0]!.opts.staleBefore).to.equal(undefined);
    expect(await rowOf('a')).to.include({ status: 'discarded', status_by: 'otto' });
    const [entry] = await listAudit(db, { limit: 1, action: 'discard' });
    expect(entry!.selection).to.deep.include({ ids, reason: 'test data' });
    expect(discardBody.safeParse({ ids }).success).to.equal(false);
    expect(replayBody.safeParse({ ids, filter: {} }).success).to.equal(false);
  });

  it('audits a replay the broker stopped, with what it took before', async function () {
    deps.dlq = {
      replay: async (url, queue, opts) => {
        if (queue === 'notifications.user-events') throw new Error('replay stopped after 0 message(s): returned');
        return dlqs.take(url, queue, opts);
      },
      discard: dlqs.take,
    };
    const res = await replaySelected(deps, otto, replayBody.parse({ filter: { reason: 'bad' } }));
    expect(res.error).to.match(/returned/);
    expect(res.taken).to.be.oneOf([0, 2]);
    const [entry] = await listAudit(db, { limit: 1 });
    expect(entry!.outcome).to.equal(res.taken > 0 ? 'partial' : 'failed');
    expect(await rowOf('n')).to.include({ status: 'parked' });
  });
});
