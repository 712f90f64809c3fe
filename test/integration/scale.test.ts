import { expect } from 'chai';
import { TestSystem, TEST_DB, waitFor } from '../support/system';

function appliedCount(lines: string[]): number {
  for (const line of lines) {
    if (!line.includes('"worker stopped"')) continue;
    return (JSON.parse(line) as { counts: { applied: number } }).counts.applied;
  }
  throw new Error('no "worker stopped" line in the worker output');
}

describe(`competing consumers (${TEST_DB})`, function () {
  this.timeout(90_000);
  const sys = new TestSystem();

  before(async () => {
    await sys.setUp({ worker: { prefetch: 1 } });
    await sys.startApi();
  });

  after(async () => {
    await sys.tearDown();
  });

  it('shares one queue between two worker processes, each message applied once', async () => {
    const env = { WARREN_LOG_LEVEL: 'info' };
    const one = await sys.startWorker('analytics', env);
    const two = await sys.startWorker('analytics', env);
    expect(await sys.consumers('analytics.tweets')).to.equal(2);
    const ada = await sys.createUser('ada_' + Date.now().toString(36).slice(-5));
    const n = 40;
    for (let i = 0; i < n; i++) {
      const res = await sys.request('POST', '/tweets', { token: ada.token, body: { text: `tweet ${i} #load` } });
      expect(res.status).to.equal(201);
    }
    await waitFor('every tweet counted', async () => (await sys.request('GET', `/analytics/users/${ada.id}`)).json?.tweetCount === n, 30_000);
    expect(await one.stop()).to.equal(0);
    expect(await two.stop()).to.equal(0);
    const a = appliedCount(one.output);
    const b = appliedCount(two.output);
    expect(a + b).to.equal(n);
    expect(a, 'first worker took a share').to.be.greaterThan(0);
    expect(b, 'second worker took a share').to.be.greaterThan(0);
  });

  it('supervises `--processes 2` and stops them all on SIGTERM', async () => {
    const supervisor = sys.start(['worker', 'analytics', '--processes', '2']);
    await waitFor('two consumers', async () => (await sys.consumers('analytics.tweets')) === 2, 30_000);
    expect(await supervisor.stop(20_000)).to.equal(0);
    await waitFor('no consumers', async () => (await sys.consumers('analytics.tweets')) === 0, 10_000);
  });
});
