import { expect } from 'chai';
import { lockStore } from '../../support/locks';
import { startApi, type ApiHarness } from './harness';

type Check = { name: string; ok: boolean; required: boolean; detail?: string };
const named = (checks: Check[], name: string) => checks.find((c) => c.name === name);

describe('api: health and readiness', () => {
  let api: ApiHarness;
  beforeEach(async () => {
    api = await startApi();
  });
  afterEach(async () => {
    await api.close();
  });

  it('answers /healthz 200 always', async () => {
    api.checks = [{ name: 'broker', ok: false }];
    const res = await api.request('GET', '/healthz');
    expect(res.status).to.equal(200);
    expect(res.body).to.deep.equal({ status: 'ok' });
  });

  it('answers /readyz 200 ok with the checks that decide it and the reported ones, each marked', async () => {
    api.checks = [
      { name: 'broker', ok: true },
      { name: 'consumer:live', ok: true },
    ];
    const res = await api.request('GET', '/readyz');
    expect(res.status).to.equal(200);
    expect(res.body.status).to.equal('ok');
    expect(res.body.checks.map((c: Check) => [c.name, c.ok, c.required])).to.deep.equal([
      ['database', true, true],
      ['writer', true, true],
      ['outbox', true, true],
      ['broker', true, false],
      ['consumer:live', true, false],
    ]);
  });

  it('stays ready (200, degraded) while the broker, topology, relay and consumers are missing, reporting each', async () => {
    api.checks = [
      { name: 'broker', ok: false, detail: 'not connected' },
      { name: 'topology', ok: false, detail: 'not verified yet' },
      { name: 'relay', ok: false, detail: 'outbox relay: connection closed' },
      { name: 'live-notifications', ok: false, detail: 'not subscribed to notifications.live' },
      { name: 'consumers:analytics.tweets', ok: false, detail: '0 consumer(s)' },
    ];
    const res = await api.request('GET', '/readyz');
    expect(res.status).to.equal(200);
    expect(res.body.status).to.equal('degraded');
    expect(res.body.checks).to.deep.include({ name: 'broker', ok: false, required: false, detail: 'not connected' });
    expect(res.body.checks.filter((c: Check) => c.required).every((c: Check) => c.ok)).to.equal(true);
    // A write is taken meanwhile: that is what staying ready means.
    expect((await api.request('POST', '/users', { body: { handle: 'during_outage', displayName: 'D' } })).status).to.equal(201);

    api.checks = new Error('wiring broke');
    const broken = await api.request('GET', '/readyz');
    expect(broken.status).to.equal(200);
    expect(broken.body.checks).to.deep.include({ name: 'readiness', ok: false, required: false, detail: 'wiring broke' });
  });

  it('answers /readyz 503 when the outbox backlog passes outbox.maxBacklog, or the database is gone', async () => {
    api.backlog = api.config.outbox.maxBacklog + 1;
    const full = await api.request('GET', '/readyz');
    expect(full.status).to.equal(503);
    expect(full.body.status).to.equal('unavailable');
    expect(named(full.body.checks, 'outbox')).to.include({ ok: false, required: true });
    expect(named(full.body.checks, 'outbox')!.detail).to.include('outbox.maxBacklog');
    api.backlog = 0;

    await api.deps.db.destroy();
    const noDb = await api.request('GET', '/readyz');
    expect(noDb.status).to.equal(503);
    expect(noDb.body.checks[0]).to.include({ name: 'database', ok: false, required: true });
    api.deps.db.initialize(); // so close() can destroy it again
  });

  it('answers /readyz 503 while draining for a stop, still taking requests', async () => {
    api.draining = true;
    const res = await api.request('GET', '/readyz');
    expect(res.status).to.equal(503);
    expect(named(res.body.checks, 'shutdown')).to.include({ ok: false, required: true });
    expect((await api.request('GET', '/healthz')).status).to.equal(200);
  });

  it('reports a writer that cannot commit (503), and is ready again once a commit goes through', async function () {
    this.timeout(40_000);
    const release = await lockStore(api.config, 'api', 'outbox');
    try {
      // Another process holds the write lock past busy_timeout: the transaction fails as a whole.
      const [failed] = await Promise.allSettled([api.writes.run((tx) => tx('outbox').where('seq', '<', 0).delete())]);
      expect(failed.status).to.equal('rejected');
      expect(api.writes.health().ok).to.equal(false);
      const res = await api.request('GET', '/readyz');
      expect(res.status).to.equal(503);
      const writer = named(res.body.checks, 'writer')!;
      expect(writer).to.include({ ok: false, required: true });
      expect(writer.detail).to.match(/^cannot commit: \d+ transaction\(s\) failed in a row \(.*(busy|locked)/i);
    } finally {
      await release();
    }
    // No request needs to come: the probe's own commit shows the writer commits again.
    const healed = await api.request('GET', '/readyz');
    expect(healed.status, JSON.stringify(healed.body)).to.equal(200);
    expect(named(healed.body.checks, 'writer')).to.include({ ok: true });
  });
});
