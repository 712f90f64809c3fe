import { expect } from 'chai';
import { freePort, TestSystem, TEST_DB, waitFor, type WarrenProcess } from '../support/system';

type Check = { name: string; ok: boolean; required: boolean; detail?: string };

/**
 * The API's readiness follows what it exists for: taking writes. Its broker
 * side here is unavailable (the AMQP credentials are wrong), and it stays
 * ready, reporting the broker down; on SIGTERM it turns not ready before it
 * stops taking connections.
 */
describe(`API readiness (${TEST_DB})`, function () {
  this.timeout(60_000);
  const sys = new TestSystem();
  let api: WarrenProcess;
  let url = '';

  before(async () => {
    await sys.setUp();
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const amqp = new URL(sys.amqpUrl);
    amqp.password = 'not-the-password';
    api = sys.start(['api'], { WARREN_HTTP_PORT: String(port), WARREN_AMQP_URL: amqp.toString(), WARREN_HTTP_DRAIN_DELAY_MS: '1500' });
    await waitFor('the API to listen', async () => (await fetch(`${url}/healthz`)).ok, 20_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${api.tail()}`);
    });
  });

  after(async () => {
    await sys.tearDown();
  });

  it('is ready (200) with the broker unreachable, reports the broker down in the body, and takes writes', async () => {
    const res = await fetch(`${url}/readyz`);
    const body = (await res.json()) as { status: string; checks: Check[] };
    expect(res.status, JSON.stringify(body)).to.equal(200);
    expect(body.status).to.equal('degraded');
    expect(body.checks.find((c) => c.name === 'broker')).to.include({ ok: false, required: false });
    expect(body.checks.filter((c) => c.required).map((c) => [c.name, c.ok])).to.deep.equal([
      ['database', true],
      ['writer', true],
      ['outbox', true],
    ]);
    const created = await fetch(`${url}/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ handle: `ready_${Date.now().toString(36).slice(-6)}`, displayName: 'Ready' }),
    });
    expect(created.status).to.equal(201);
  });

  it('on SIGTERM answers /readyz 503 while still serving, then stops taking connections and exits 0', async () => {
    const sent = Date.now();
    api.child.kill('SIGTERM');
    const draining = await waitFor(
      'readyz to answer 503',
      async () => {
        const res = await fetch(`${url}/readyz`);
        return res.status === 503 ? ((await res.json()) as { checks: Check[] }) : undefined;
      },
      1000,
      20,
    );
    expect(draining.checks.find((c) => c.name === 'shutdown')).to.include({ ok: false, required: true });
    expect((await fetch(`${url}/healthz`)).status, 'still serving while draining').to.equal(200);
    expect(await api.waitExit(), api.tail()).to.equal(0);
    expect(Date.now() - sent, 'the drain delay passed before the stop').to.be.at.least(1500);
    const [after] = await Promise.allSettled([fetch(`${url}/healthz`)]);
    expect(after.status, 'no connections taken after the stop').to.equal('rejected');
  });
});
