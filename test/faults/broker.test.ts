import fs from 'node:fs';
import { expect } from 'chai';
import { closeVhostConnections, healBroker, setMemoryAlarm, startBroker, startBrokerApp, stopBroker, stopBrokerApp } from '../support/broker';
import { waitFor } from '../support/system';

function rssMb(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return Math.round(kb / 1024);
}
import { runScenario } from './support/scenario';

/**
 * Scenarios that take the broker away. Each restores it, even when it fails:
 * later tests and sessions use the same broker.
 */
describe('faults: the broker goes away under load', function () {
  this.timeout(300_000);
  let brokerDown = false;
  let alarm = false;

  afterEach(async () => {
    if (alarm) await setMemoryAlarm(false);
    alarm = false;
    if (brokerDown) await startBroker();
    brokerDown = false;
    await healBroker();
  });

  it('2a. full node stop/start mid-load: the API answers 201 throughout and the backlog drains', async () => {
    await runScenario('RabbitMQ node stopped and started mid-load', {}, async ({ sleep }) => {
      await sleep(3000);
      brokerDown = true;
      await stopBroker();
      await sleep(3000);
      await startBroker();
      brokerDown = false;
    });
  });

  it('2b. stop_app / start_app mid-load: the API answers 201 throughout and the backlog drains', async () => {
    await runScenario('RabbitMQ app stopped and started mid-load (stop_app/start_app)', {}, async ({ sleep }) => {
      await sleep(3000);
      brokerDown = true;
      await stopBrokerApp();
      await sleep(3000);
      await startBrokerApp();
      brokerDown = false;
    });
  });

  it('3. broker unreachable at API start-up: the API starts, serves reads, takes writes, relays them once the broker appears', async () => {
    await runScenario(
      'broker down when the API starts, up 6 s later',
      {
        start: async (sys) => {
          brokerDown = true;
          await stopBroker();
          await sys.startApi();
          // Ready all the same: it takes writes into the outbox, and reports the broker down.
          const ready = await sys.request('GET', '/readyz');
          expect(ready.status).to.equal(200);
          expect(ready.json.checks.find((c: { name: string }) => c.name === 'broker')).to.include({ ok: false, required: false });
        },
      },
      async ({ sys, sleep }) => {
        const someone = await waitFor('a user created during the outage', async () => {
          const res = await sys.request('POST', '/users', { body: { handle: `outage_${Date.now().toString(36).slice(-6)}`, displayName: 'Outage' } });
          return res.status === 201 ? (res.json.user.id as string) : undefined;
        });
        expect((await sys.request('GET', `/users/${someone}`)).status, 'reads are served').to.equal(200);
        await sleep(6000);
        await startBroker();
        brokerDown = false;
        await sys.startWorker('analytics');
        await sys.startWorker('notifications');
        await sys.startWorker('timeline');
      },
    );
  });

  it('6. connections closed by the broker, three times, mid-load', async () => {
    await runScenario('all connections closed by the broker, 3 times', {}, async ({ sys, sleep }) => {
      for (let i = 0; i < 3; i++) {
        await sleep(2500);
        await closeVhostConnections(sys.vhost, `fault suite ${i + 1}`);
      }
    });
  });

  it('7. memory alarm mid-load: publishing blocks, the API keeps accepting, nothing is lost after it clears', async () => {
    await runScenario('memory alarm for 6 s mid-load', {}, async ({ sys, sleep }) => {
      const api = sys.processes.find((p) => p.name === 'api')!;
      await sleep(3000);
      const rssBefore = rssMb(api.child.pid!);
      alarm = true;
      await setMemoryAlarm(true);
      await sleep(3000);
      const ready = await sys.request('GET', '/readyz');
      expect(ready.status, 'the API stays ready: the outbox takes the writes').to.equal(200);
      expect(
        ready.json.checks.find((c: { name: string }) => c.name === 'broker'),
        'readiness reports the blocked broker',
      ).to.include({ ok: false });
      await sleep(3000);
      const rssBlocked = rssMb(api.child.pid!);
      await setMemoryAlarm(false);
      alarm = false;
      console.log(`      API RSS ${rssBefore} MB before the alarm, ${rssBlocked} MB after 6 s blocked`);
      // The backlog lives in the outbox on disk; the relay holds one batch at a time.
      expect(rssBlocked - rssBefore).to.be.below(64);
    });
  });

  it('13. outbox backpressure: past outbox.maxBacklog writes answer 503 with Retry-After and /readyz says why', async () => {
    await runScenario(
      'broker down long enough to fill outbox.maxBacklog (200)',
      { config: { outbox: { maxBacklog: 200, retainSentHours: 24 } }, allowRefused: [503], load: { durationMs: 10_000 } },
      async ({ sys, load, sleep }) => {
        await sleep(1000);
        brokerDown = true;
        await stopBroker();
        await waitFor('writes refused with 503', async () => (load.figures.refused['503'] ?? 0) > 0, 30_000);
        const user = await sys.createUser(`bp_${Date.now().toString(36).slice(-6)}`).catch(() => undefined);
        expect(user, 'a refused write leaves nothing behind').to.equal(undefined);
        const refused = await sys.request('POST', '/users', { body: { handle: `bp2_${Date.now().toString(36).slice(-6)}`, displayName: 'x' } });
        expect(refused.status).to.equal(503);
        expect(refused.headers.get('retry-after')).to.match(/^\d+$/);
        expect(refused.json.error.code).to.equal('outbox_backlog');
        const ready = await sys.request('GET', '/readyz');
        expect(ready.status).to.equal(503);
        expect(JSON.stringify(ready.json)).to.match(/backlog/);
        await startBroker();
        brokerDown = false;
      },
    );
  });
});
