import { expect } from 'chai';
import { readBooks } from './support/books';
import { deleteRoutes, restoreRoutes, runScenario } from './support/scenario';
import { waitFor } from '../support/system';

describe('faults: processes killed and stopped under load', function () {
  this.timeout(240_000);

  it('1a. kill -9 of an analytics worker, twice, with a second worker running', async () => {
    await runScenario('kill -9 of one of two analytics workers, twice', {}, async ({ sys, expectExit, sleep }) => {
      const second = await sys.startWorker('analytics');
      void second;
      for (let i = 0; i < 2; i++) {
        await sleep(3000);
        const victim = sys.processes.find((p) => p.name === 'worker analytics' && p.running)!;
        expectExit(victim);
        await victim.kill9();
        if (i === 0) await sys.startWorker('analytics');
      }
    });
  });

  it('1b. kill -9 of the only analytics worker, restarted after 5 s', async () => {
    await runScenario('kill -9 of the only analytics worker, restarted after 5 s', {}, async ({ sys, expectExit, sleep }) => {
      await sleep(3000);
      const only = sys.processes.find((p) => p.name === 'worker analytics')!;
      expectExit(only);
      await only.kill9();
      await sleep(5000);
      await sys.startWorker('analytics');
    });
  });

  it('4. kill -9 of the API between writing and relaying: the next API relays the rows once', async () => {
    await runScenario(
      'kill -9 of the API mid-load (rows written, not relayed), restarted after 1 s',
      { allowRefused: [0] },
      async ({ sys, expectExit, sleep }) => {
        await sleep(4000);
        const api = sys.processes.find((p) => p.name === 'api')!;
        expectExit(api);
        await api.kill9();
        await sleep(1000);
        await sys.startApi();
      },
    );
  });

  it('4b. kill -9 of the API with a backlog it could not relay (broker blocked): the next API relays it', async () => {
    await runScenario(
      'kill -9 of the API holding an unrelayed outbox, restarted',
      { allowRefused: [0], load: { durationMs: 8000 } },
      async ({ sys, expectExit, sleep }) => {
        // Take the routes away so relayed rows come back (mandatory) and stay in the outbox.
        const removed = await deleteRoutes(sys, 'tweets');
        await sleep(4000);
        const api = sys.processes.find((p) => p.name === 'api')!;
        expectExit(api);
        await api.kill9();
        const unsent = await waitFor('unsent outbox rows', async () => {
          const b = await readBooks(sys);
          return b.outboxUnsent > 0 ? b.outboxUnsent : undefined;
        });
        expect(unsent).to.be.greaterThan(0);
        await restoreRoutes(sys, removed);
        await sys.startApi();
      },
    );
  });

  it('5. SIGTERM to every process mid-load: each exits 0 in bounded time, and after a restart the books balance', async () => {
    await runScenario('SIGTERM to every process mid-load, then restart', { allowRefused: [0] }, async ({ sys, expectExit, sleep }) => {
      await sleep(4000);
      const running = sys.processes.filter((p) => p.running);
      const started = Date.now();
      const codes = await Promise.all(
        running.map((p) => {
          expectExit(p);
          return p.stop(20_000);
        }),
      );
      const tookMs = Date.now() - started;
      console.log(`      graceful stop of ${running.length} processes: exit codes ${codes.join(', ')} in ${tookMs} ms`);
      expect(codes).to.deep.equal(running.map(() => 0));
      expect(tookMs).to.be.below(15_000);
      await sleep(1000);
      await sys.startApi();
      await sys.startWorker('analytics');
      await sys.startWorker('notifications');
      await sys.startWorker('timeline');
    });
  });
});
