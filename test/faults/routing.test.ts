import { expect } from 'chai';
import { closeVhostConnections } from '../support/broker';
import { lockAnalyticsStore } from '../support/locks';
import { waitFor } from '../support/system';
import { readBooks } from './support/books';
import { deleteRoutes, holdPublishing, restoreRoutes, runScenario } from './support/scenario';

describe('faults: routes removed and handlers failing under load', function () {
  this.timeout(240_000);

  it('14a. every route of tweets deleted by an operator: returned events stay in the outbox and go out once they are back', async () => {
    await runScenario('bindings of tweets (analytics, timeline) deleted for 5 s', {}, async ({ sys, sleep }) => {
      await sleep(3000);
      const removed = await deleteRoutes(sys, 'tweets');
      await waitFor('returned tweets kept in the outbox', async () => (await readBooks(sys)).outboxUnsent > 0, 10_000);
      await sleep(5000);
      await restoreRoutes(sys, removed);
    });
  });

  it("14b. a fanout subscriber's binding deleted: events wait in the outbox, the subscriber re-binds its own queue on reconnect", async () => {
    await runScenario(
      'bindings of user.events (notifications, timeline) deleted, workers reconnect',
      { load: { profileShare: 0.5 } },
      async ({ sys, sleep }) => {
        await sleep(3000);
        // Every subscriber's binding (notifications, timeline): with one left the events would route there, not come back.
        await deleteRoutes(sys, 'user.events');
        await waitFor('returned profile changes kept in the outbox', async () => (await readBooks(sys)).outboxUnsent > 0, 10_000);
        await sleep(3000);
        // No operator action: each worker's reconnect alone restores its subscription. The two re-bind one after the
        // other, so publishing is held until both are back (an event between would reach only the first).
        const bindings = await holdPublishing(async () => {
          await closeVhostConnections(sys.vhost, 'fault suite: reconnect');
          return waitFor('both subscriptions to be back', async () => {
            const lists = await Promise.all(['notifications.user-events', 'timeline.events'].map((q) => sys.management.queueBindings(sys.vhost, q)));
            return lists.every((list) => list.some((b) => b.source === 'user.events')) ? lists.flat() : undefined;
          });
        });
        expect(bindings.filter((b) => b.source === 'user.events').map((b) => b.destination)).to.include.members([
          'notifications.user-events',
          'timeline.events',
        ]);
      },
    );
  });

  it('8. the analytics store locked for 8 s mid-load: handlers fail, are retried with backoff, and succeed', async () => {
    await runScenario(
      'analytics store write-locked for 8 s (handlers fail, retried)',
      { config: { retry: { attempts: { 'analytics.tweets': 5, 'notifications.user-events': 5 } } } },
      async ({ sys, sleep }) => {
        await sleep(3000);
        const release = await lockAnalyticsStore(sys.config);
        try {
          await sleep(8000);
        } finally {
          await release();
        }
        const worker = sys.processes.find((p) => p.name === 'worker analytics')!;
        // A batch the lock fails runs its messages again one at a time (which may then
        // wait the lock out, or fail and go through the delay queues): either shows.
        const failures = worker.output.filter((line) => line.includes('"handler failed"')).length;
        const failedBatches = worker.output.filter((line) => line.includes('"batch failed; its messages run again one at a time"')).length;
        console.log(`      while locked: ${failures} handler failure(s), ${failedBatches} failed batch(es)`);
        expect(failures + failedBatches, 'the lock made handlers or batches fail (and the books still balance)').to.be.greaterThan(0);
      },
    );
  });
});
