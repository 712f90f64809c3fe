import type { Channel, ConsumeMessage } from 'amqplib';
import { expect } from 'chai';
import { ChannelAcks } from '../../../src/consume/acks';
import { Delivery, IllegalTransitionError, type Settlement } from '../../../src/consume/delivery';

/** A channel that records the acks it was sent as (delivery tag, multiple), and can be made to throw as a closed amqplib channel does. */
function recordingChannel(): { acks: ChannelAcks; sent: [number, boolean][]; breakIt(): void } {
  const sent: [number, boolean][] = [];
  let broken = false;
  const channel = {
    ack: (msg: ConsumeMessage, allUpTo?: boolean) => {
      if (broken) throw new Error('Channel closed');
      sent.push([msg.fields.deliveryTag, allUpTo === true]);
    },
  } as unknown as Channel;
  return { acks: new ChannelAcks(channel), sent, breakIt: () => (broken = true) };
}

function message(tag: number, redelivered = false): ConsumeMessage {
  return { fields: { deliveryTag: tag, redelivered }, properties: { messageId: `m-${tag}` }, content: Buffer.alloc(0) } as unknown as ConsumeMessage;
}

describe('Delivery: one lifecycle per delivery', () => {
  const settlements: Settlement[] = [];
  const delivery = (acks: ChannelAcks, tag: number) => new Delivery(message(tag), acks, (s) => settlements.push(s));
  /** A delivery brought to `handled`, as after its commit. */
  const handledDelivery = (acks: ChannelAcks, tag: number) => {
    const d = delivery(acks, tag);
    d.wait();
    d.start();
    d.handled();
    return d;
  };
  beforeEach(() => (settlements.length = 0));

  it('goes received, waiting, handling, handled, acked, and is settled once, with its outcome', async () => {
    const { acks, sent } = recordingChannel();
    const d = delivery(acks, 1);
    const seen = [d.state];
    d.wait();
    seen.push(d.state);
    d.start();
    seen.push(d.state);
    d.handled();
    seen.push(d.state);
    expect(sent, 'nothing acked before it is acked').to.deep.equal([]);
    d.ack('applied');
    seen.push(d.state);
    expect(seen).to.deep.equal(['received', 'waiting', 'handling', 'handled', 'acked']);
    expect(sent).to.deep.equal([[1, false]]);
    expect(settlements).to.have.length(1);
    expect(settlements[0]).to.include({ delivery: d, end: 'acked', outcome: 'applied' });
    expect(await d.whenSettled).to.equal(settlements[0]);
    expect(d.settled).to.equal(true);
    expect(d.started).to.equal(true);
  });

  it('resolves whenHandled once its handler is done, before it is settled', async () => {
    const { acks } = recordingChannel();
    const d = delivery(acks, 1);
    d.wait();
    d.start();
    let handled = false;
    void d.whenHandled.then(() => (handled = true));
    await new Promise((r) => setImmediate(r));
    expect(handled).to.equal(false);
    d.handled();
    await d.whenHandled;
    expect(d.settled).to.equal(false);
  });

  it('throws on every transition out of order or made twice', () => {
    const { acks } = recordingChannel();
    const d = delivery(acks, 1);
    expect(() => d.start(), 'handled before it waited its turn').to.throw(IllegalTransitionError, /received to handling/);
    expect(() => d.handled()).to.throw(IllegalTransitionError);
    expect(() => d.ack('applied'), 'acked before it was handled').to.throw(IllegalTransitionError, /received to acked/);
    d.wait();
    expect(() => d.wait(), 'waiting twice').to.throw(IllegalTransitionError, /waiting to waiting/);
    d.start();
    expect(() => d.start(), 'started twice').to.throw(IllegalTransitionError);
    d.handled();
    expect(() => d.handled(), 'handled twice').to.throw(IllegalTransitionError);
    expect(() => d.wait()).to.throw(IllegalTransitionError);
    expect(d.state, 'a refused transition changes nothing').to.equal('handled');
    expect(settlements).to.deep.equal([]);
  });

  it('refuses a second settlement, sending nothing for it', () => {
    const { acks, sent } = recordingChannel();
    const d = handledDelivery(acks, 1);
    d.ack('applied');
    expect(() => d.ack('applied'), 'a double ack').to.throw(IllegalTransitionError, /acked to acked/);
    expect(() => d.giveUp('late'), 'given up once acked').to.throw(IllegalTransitionError, /acked to given-up/);
    expect(sent, 'one ack reached the channel').to.deep.equal([[1, false]]);

    const e = handledDelivery(acks, 2);
    e.giveUp('its channel closed');
    expect(() => e.ack('retried')).to.throw(IllegalTransitionError, /given-up to acked/);
    expect(() => e.giveUp('again')).to.throw(IllegalTransitionError);
    expect(sent).to.deep.equal([[1, false]]);
    expect(settlements.map((s) => s.end)).to.deep.equal(['acked', 'released']);
  });

  it('never acks a delivery whose channel closed: it ends stale, with its outcome, and nothing is sent', () => {
    const { acks, sent } = recordingChannel();
    const d = handledDelivery(acks, 1);
    acks.close();
    d.ack('applied');
    expect(sent).to.deep.equal([]);
    expect(d.state).to.equal('given-up');
    expect(settlements[0]).to.include({ end: 'stale', outcome: 'applied', why: 'its channel closed, the broker redelivers it' });
    expect(() => d.ack('applied'), 'and it cannot be acked later').to.throw(IllegalTransitionError);
    expect(sent).to.deep.equal([]);
  });

  it('ends stale, with the error, when the channel refuses the ack', () => {
    const { acks, breakIt } = recordingChannel();
    const d = handledDelivery(acks, 1);
    breakIt();
    d.ack('parked', { attempt: 1, kind: 'permanent', err: 'PermanentError: not JSON' });
    expect(settlements[0]).to.include({ end: 'stale', outcome: 'parked', why: 'ack failed', error: 'Channel closed' });
    expect(settlements[0]!.failure).to.deep.equal({ attempt: 1, kind: 'permanent', err: 'PermanentError: not JSON' });
  });

  it('can be given up at any step before its end, once, without an outcome', async () => {
    const { acks, sent } = recordingChannel();
    const waiting = delivery(acks, 1);
    waiting.wait();
    const handling = delivery(acks, 2);
    handling.wait();
    handling.start();
    waiting.giveUp('its channel closed before it ran');
    handling.giveUp('its run ended without settling it');
    await waiting.whenHandled; // nothing waits for a handler that will never run
    expect(settlements.map((s) => [s.end, s.outcome, s.delivery.started])).to.deep.equal([
      ['released', undefined, false],
      ['released', undefined, true],
    ]);
    expect(sent).to.deep.equal([]);
  });

  it('acks deliveries that committed together with one multiple ack on their channel', () => {
    const { acks, sent } = recordingChannel();
    const ds = [1, 2, 3].map((tag) => handledDelivery(acks, tag));
    Delivery.ackTogether(ds.map((delivery, i) => ({ delivery, outcome: i === 2 ? ('duplicate' as const) : ('applied' as const) })));
    expect(sent).to.deep.equal([[3, true]]);
    expect(settlements.map((s) => s.outcome)).to.deep.equal(['applied', 'applied', 'duplicate']);
    expect(ds.every((d) => d.state === 'acked')).to.equal(true);
  });

  it('acks nothing of a batch when one of it cannot be acked, or came on another channel', () => {
    const one = recordingChannel();
    const other = recordingChannel();
    const a = handledDelivery(one.acks, 1);
    const notHandled = delivery(one.acks, 2);
    expect(() => Delivery.ackTogether([a, notHandled].map((delivery) => ({ delivery, outcome: 'applied' as const })))).to.throw(IllegalTransitionError);
    const elsewhere = handledDelivery(other.acks, 1);
    expect(() => Delivery.ackTogether([a, elsewhere].map((delivery) => ({ delivery, outcome: 'applied' as const })))).to.throw(/another channel/);
    expect(one.sent).to.deep.equal([]);
    expect(other.sent).to.deep.equal([]);
    expect(a.state).to.equal('handled');
    expect(settlements).to.deep.equal([]);
  });
});
