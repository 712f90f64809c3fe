import type { ConfirmChannel } from 'amqplib';
import { expect } from 'chai';
import { ManagedChannel } from '../../src/broker/channel';
import { connectBroker } from '../../src/broker/connection';
import { createLogger } from '../../src/log';
import { TestSystem, waitFor } from '../support/system';

/** ManagedChannel against the real broker: a channel the broker closes while it is being set up is never kept. */
describe('managed channels on the broker', function () {
  this.timeout(60_000);
  const sys = new TestSystem();
  const log = createLogger('test', 'silent');

  before(() => sys.setUp());
  after(() => sys.tearDown());

  it('replaces a channel the broker closed during its setup, and the next one publishes', async () => {
    const connection = connectBroker({ url: sys.amqpUrl, service: 'channel test', role: 'publish', heartbeatSeconds: 10, reconnectSeconds: 1, log });
    let setups = 0;
    const managed = new ManagedChannel<ConfirmChannel>({
      connection,
      confirm: true,
      name: 'test',
      log,
      retryDelayMs: 100,
      setup: async (ch) => {
        if (++setups > 1) return;
        // The first setup outlives its channel: the broker closes it (404) for a publish to an
        // exchange that does not exist, which has no reply to fail; the setup itself succeeds.
        const closed = new Promise((resolve) => ch.once('close', resolve));
        ch.publish('warren-no-such-exchange', '', Buffer.from('x'));
        await closed;
      },
    });
    try {
      const ch = await waitFor(
        'a channel that confirms a publish',
        async () => {
          const current = managed.current();
          if (!current) return undefined;
          await new Promise<void>((resolve, reject) =>
            current.publish('warren.dlx', 'nowhere', Buffer.from('x'), {}, (err) => (err ? reject(err as Error) : resolve())),
          );
          return current;
        },
        10_000,
        100,
      );
      expect(setups).to.equal(2);
      expect(ch).to.equal(managed.current());
    } finally {
      await managed.close();
      await connection.close();
    }
  });
});
