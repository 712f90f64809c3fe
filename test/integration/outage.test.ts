import { expect } from 'chai';
import { healBroker, startBroker, stopBroker } from '../support/broker';
import { TestSystem, TEST_DB, waitFor } from '../support/system';

describe(`broker outage (${TEST_DB})`, function () {
  this.timeout(180_000);
  const sys = new TestSystem();
  let brokerStopped = false;

  before(async () => {
    await sys.setUp();
    await sys.startApi();
    await sys.startWorker('analytics');
  });

  after(async () => {
    // The broker is shared with every later test and session: always restore it.
    if (brokerStopped) await startBroker();
    await sys.tearDown();
    // Its vhost went moments after the restart, while the node may still have been starting its queues' dead-letter
    // workers: if their crashes took the supervisor down, restart the node for the tests after this one.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await healBroker();
  });

  it('accepts a tweet while RabbitMQ is stopped and counts it once the broker is back', async () => {
    const ada = await sys.createUser('ada_' + Date.now().toString(36).slice(-5));
    brokerStopped = true;
    await stopBroker();
    const res = await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'written during the outage' } });
    expect(res.status).to.equal(201);
    // Still ready: it takes writes into the outbox; the broker is reported down in the body.
    const ready = await sys.request('GET', '/readyz');
    expect(ready.status).to.equal(200);
    expect(ready.json.checks.find((c: { name: string }) => c.name === 'broker')).to.include({ ok: false, required: false });
    await startBroker();
    brokerStopped = false;
    await waitFor('the tweet to be counted', async () => (await sys.request('GET', `/analytics/users/${ada.id}`)).json?.tweetCount === 1, 60_000, 250);
  });
});
