import { expect } from 'chai';
import { startApi, type ApiHarness } from './harness';

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

  it('answers /readyz 200 with the database check and the process checks when all pass', async () => {
    api.checks = [{ name: 'broker', ok: true }, { name: 'consumer:live', ok: true }];
    const res = await api.request('GET', '/readyz');
    expect(res.status).to.equal(200);
    expect(res.body).to.deep.equal({
      status: 'ok',
      checks: [{ name: 'database', ok: true }, { name: 'broker', ok: true }, { name: 'consumer:live', ok: true }],
    });
  });

  it('answers /readyz 503 when a readiness check fails', async () => {
    api.checks = [{ name: 'broker', ok: false, detail: 'connection refused' }];
    const res = await api.request('GET', '/readyz');
    expect(res.status).to.equal(503);
    expect(res.body.status).to.equal('unavailable');
    expect(res.body.checks).to.deep.include({ name: 'broker', ok: false, detail: 'connection refused' });
    expect(res.body.checks).to.deep.include({ name: 'database', ok: true });
  });

  it('answers /readyz 503 when the readiness checks themselves fail, or the database is gone', async () => {
    api.checks = new Error('wiring broke');
    const broken = await api.request('GET', '/readyz');
    expect(broken.status).to.equal(503);
    expect(broken.body.checks).to.deep.include({ name: 'readiness', ok: false, detail: 'wiring broke' });

    api.checks = [];
    await api.deps.db.destroy();
    const noDb = await api.request('GET', '/readyz');
    expect(noDb.status).to.equal(503);
    expect(noDb.body.checks[0]).to.include({ name: 'database', ok: false });
    api.deps.db.initialize(); // so close() can destroy it again
  });
});
