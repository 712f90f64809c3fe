import type { Channel } from 'amqplib';
import { expect } from 'chai';
import { ChannelAcks } from '../../../src/consume/acks';
import { Delivery, type Settlement } from '../../../src/consume/delivery';
import { DeliveryLane } from '../../../src/consume/deliveryLane';
import { createLogger } from '../../../src/log';
import { FakeChannel, type FakeMessage } from '../../support/fakeAmqp';
import { waitFor } from '../../support/wait';

const log = createLogger('test', 'silent');

function message(id: string, redelivered = false): FakeMessage {
  return { content: Buffer.from('{}'), exchange: 'tweets', routingKey: 'tweet.created', properties: { messageId: id }, redelivered };
}

/** A run the test releases by hand: each delivery is handled and acked when the test says so. */
class Runs {
  readonly calls: { ids: string[]; alone: boolean }[] = [];
  private readonly releases: (() => void)[] = [];

  readonly run = async (batch: Delivery[], alone: boolean): Promise<void> => {
    this.calls.push({ ids: batch.map((d) => String(d.msg.properties.messageId)), alone });
    for (const d of batch) d.start();
    await new Promise<void>((resolve) => this.releases.push(resolve));
    for (const d of batch) d.handled();
    Delivery.ackTogether(batch.map((delivery) => ({ delivery, outcome: 'applied' as const })));
  };

  /** Ends the oldest run still open. */
  async finishNext(): Promise<void> {
    await waitFor('a run to finish', async () => this.releases.length > 0, 1000, 2);
    this.releases.shift()!();
    await new Promise((r) => setImmediate(r));
  }
}

/**
 * DeliveryLane on a fake channel, one behaviour per test: it decides when
 * each delivery runs (batches of first deliveries, redeliveries alone, a
 * cautious start), and nothing waiting runs once its channel is closed.
 */
describe('DeliveryLane', () => {
  let channel: FakeChannel;
  let runs: Runs;
  let settlements: Settlement[];
  let seq: number;

  const lane = (opts: { prefetch?: number; batchSize?: number } = {}) => {
    const acks = new ChannelAcks(channel as unknown as Channel);
    const l = new DeliveryLane({
      channel: channel as unknown as Channel,
      queue: 'analytics.tweets',
      prefetch: opts.prefetch ?? 10,
      batchSize: opts.batchSize ?? 10,
      consumerTag: () => `lane #${++seq}`,
      receive: (msg) => new Delivery(msg, acks, (s) => settlements.push(s)),
      run: runs.run,
      onCancelled: () => undefined,
      log,
    });
    return l;
  };

  beforeEach(() => {
    channel = new FakeChannel(1);
    runs = new Runs();
    settlements = [];
    seq = 0;
  });

  it('starts cautious (prefetch 1) and opens to the full prefetch at the first delivery that is not a redelivery, subscribing before it cancels', async () => {
    const l = lane({ prefetch: 10 });
    await l.start();
    expect(channel.prefetches).to.deep.equal([1]);
    channel.deliver(message('a'));
    await waitFor('the open subscription', async () => channel.consumes.length === 2, 1000, 2);
    await waitFor('the cautious one cancelled', async () => channel.cancels.length === 1, 1000, 2);
    expect(channel.prefetches).to.deep.equal([1, 10]);
    expect(channel.consumes.map((c) => c.consumerTag)).to.deep.equal(['lane #1', 'lane #2']);
    expect(channel.cancels).to.deep.equal(['lane #1']);
    await runs.finishNext();
    expect(channel.ackedIds()).to.deep.equal(['a']);
  });

  it('runs the first deliveries of one turn as one batch, up to its size, and the next batch only once the first is handled', async () => {
    const l = lane({ prefetch: 10, batchSize: 3 });
    await l.start();
    for (const id of ['a', 'b', 'c', 'd', 'e']) channel.deliver(message(id));
    await waitFor('the first batch', async () => runs.calls.length === 1, 1000, 2);
    expect(runs.calls[0]).to.deep.equal({ ids: ['a', 'b', 'c'], alone: false });
    await new Promise((r) => setTimeout(r, 20));
    expect(runs.calls, 'the next batch waits for the handlers of this one').to.have.length(1);
    await runs.finishNext();
    await waitFor('the second batch', async () => runs.calls.length === 2, 1000, 2);
    expect(runs.calls[1]).to.deep.equal({ ids: ['d', 'e'], alone: false });
    await runs.finishNext();
    expect(channel.ackedIds().sort()).to.deep.equal(['a', 'b', 'c', 'd', 'e']);
  });

  it('runs a redelivery alone, only after the deliveries held beside it are handled, and holds later first deliveries until it is done', async () => {
    const l = lane({ prefetch: 10 });
    await l.start();
    channel.deliver(message('first'));
    await waitFor('the first delivery running', async () => runs.calls.length === 1, 1000, 2);
    await waitFor('the lane open', async () => channel.prefetches.length === 2, 1000, 2);
    channel.deliver(message('suspect', true));
    await new Promise((r) => setTimeout(r, 20));
    expect(runs.calls, 'the suspect waits for the handler of the delivery held beside it').to.have.length(1);
    expect(l.isolatingCount(), 'one suspect waiting, none running').to.equal(1);
    await waitFor('the step-down to one at a time', async () => channel.prefetches.at(-1) === 1, 1000, 2);
    const laterTag = channel.activeConsumers().at(-1);
    channel.deliver(message('later'), laterTag);
    await runs.finishNext();
    await waitFor('the suspect running', async () => runs.calls.length === 2, 1000, 2);
    expect(runs.calls[1]).to.deep.equal({ ids: ['suspect'], alone: true });
    expect(l.isolatingCount(), 'the suspect running').to.equal(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(runs.calls, 'a first delivery that arrived meanwhile waits for the suspect').to.have.length(2);
    await runs.finishNext();
    await waitFor('the later delivery running', async () => runs.calls.length === 3, 1000, 2);
    expect(runs.calls[2]).to.deep.equal({ ids: ['later'], alone: false });
    await runs.finishNext();
    expect(channel.ackedIds().sort()).to.deep.equal(['first', 'later', 'suspect']);
  });

  it('gives up, unacked, whatever waits when its channel closes, and runs none of it', async () => {
    const l = lane({ prefetch: 10, batchSize: 1 });
    await l.start();
    channel.deliver(message('a'));
    channel.deliver(message('b'));
    await waitFor('the first run', async () => runs.calls.length === 1, 1000, 2);
    l.close();
    const waiting = settlements.find((s) => String(s.delivery.msg.properties.messageId) === 'b');
    expect(waiting?.end).to.equal('released');
    await new Promise((r) => setTimeout(r, 20));
    expect(runs.calls.map((c) => c.ids)).to.deep.equal([['a']]);
    expect(channel.ackedIds()).to.deep.equal([]);
  });
});
