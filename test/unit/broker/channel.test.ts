import { Writable } from 'node:stream';
import type { Channel } from 'amqplib';
import { expect } from 'chai';
import { ManagedChannel } from '../../../src/broker/channel';
import { ConfirmPublisher, PublishError } from '../../../src/broker/publisher';
import { createLogger } from '../../../src/log';
import { fakeConnection, type FakeChannel } from '../../support/fakeAmqp';
import { waitFor } from '../../support/wait';

const log = createLogger('test', 'silent');

describe('ManagedChannel', () => {
  it('replaces a channel that closed during its own setup, and replays the setup on the next', async () => {
    const { connection, channels } = fakeConnection();
    let setups = 0;
    const managed = new ManagedChannel<Channel>({
      connection,
      confirm: false,
      name: 'test',
      log,
      retryDelayMs: 10,
      setup: async (ch) => {
        setups++;
        // The broker closes the first channel while its setup runs; every step of the setup still answered.
        if (setups === 1) (ch as unknown as FakeChannel).closeFromBroker();
      },
    });
    try {
      await waitFor('a second channel to be set up', async () => setups >= 2 && managed.current() !== undefined, 2000, 5);
      expect(channels).to.have.length(2);
      expect(managed.current()).to.equal(channels[1]);
      expect(channels[1]!.closed).to.equal(false);
      expect(managed.failure()).to.equal('');
    } finally {
      await managed.close();
    }
  });

  it('logs a failed setup with the error and its stack, once until it changes', async () => {
    const { connection } = fakeConnection();
    const lines: Record<string, unknown>[] = [];
    const capture = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
        done();
      },
    });
    let setups = 0;
    const managed = new ManagedChannel<Channel>({
      connection,
      confirm: false,
      name: 'test',
      log: createLogger('test', 'warn', capture),
      retryDelayMs: 5,
      setup: async () => {
        setups++;
        throw new TypeError('queue.bind refused');
      },
    });
    try {
      await waitFor('a few setups', async () => setups >= 3, 2000, 5);
      const failed = lines.filter((l) => l.msg === 'channel setup failed, retrying');
      expect(failed).to.have.length(1);
      const err = failed[0]!.err as { type: string; message: string; stack: string };
      expect(err).to.include({ type: 'TypeError', message: 'queue.bind refused' });
      expect(err.stack).to.match(/^TypeError: queue\.bind refused\n\s+at /);
    } finally {
      await managed.close();
    }
  });

  it('comes back on the next connect after a channel closed during its setup while disconnected', async () => {
    const { connection, channels, setConnected } = fakeConnection();
    let setups = 0;
    const managed = new ManagedChannel<Channel>({
      connection,
      confirm: false,
      name: 'test',
      log,
      retryDelayMs: 10,
      setup: async (ch) => {
        setups++;
        if (setups === 1) {
          // The connection drops during the setup: the channel closes with it, and no retry is due.
          setConnected(false);
          (ch as unknown as FakeChannel).closeFromBroker();
        }
      },
    });
    try {
      await new Promise((r) => setTimeout(r, 50));
      expect(managed.current(), 'a closed channel is never current').to.equal(undefined);
      setConnected(true);
      await waitFor('the channel after the reconnect', async () => managed.current() !== undefined, 2000, 5);
      expect(managed.current()).to.equal(channels[1]);
    } finally {
      await managed.close();
    }
  });
});

describe('ConfirmPublisher', () => {
  const request = (messageId: string) => ({ exchange: 'warren.dlx', routingKey: 'q', content: Buffer.from('{}'), properties: { messageId } });

  it('fails a publish that throws before it is sent alone: the channel stays, and later confirms settle their own publishes', async () => {
    const { connection, channels } = fakeConnection();
    const publisher = new ConfirmPublisher(connection, log, 300);
    try {
      expect(await publisher.waitForChannel(1000)).to.equal(true);
      const first = channels[0]!;
      first.throwsOn = (id) => (id === 'poison' ? new RangeError('Maximum call stack size exceeded') : undefined);
      const before = publisher.publish(request('before'));
      const poison = await publisher.publish(request('poison')).catch((err: unknown) => err);
      expect(poison).to.be.instanceOf(PublishError);
      // Publishing it again would throw again: the caller is told it is the message, not the channel.
      expect((poison as PublishError).reason).to.equal('unencodable');

      const after = publisher.publish(request('after'));
      expect(channels, 'no new channel').to.have.length(1);
      expect(first.sent.map((s) => s.messageId)).to.deep.equal(['before', 'after']);
      let afterSettled = false;
      void after.then(() => (afterSettled = true));
      first.confirmNext();
      await before;
      await new Promise((r) => setImmediate(r));
      expect(afterSettled, 'the confirm of "before" settles only "before"').to.equal(false);
      first.confirmNext();
      await after;
      expect(first.closed).to.equal(false);
    } finally {
      await publisher.close();
    }
  });
});
