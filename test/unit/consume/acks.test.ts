import type { Channel, ConsumeMessage } from 'amqplib';
import { expect } from 'chai';
import { ChannelAcks } from '../../../src/consume/acks';

/** The acks a channel was sent, as (delivery tag, multiple). */
function recordingChannel(): { channel: Channel; sent: [number, boolean][] } {
  const sent: [number, boolean][] = [];
  const channel = { ack: (msg: ConsumeMessage, allUpTo?: boolean) => sent.push([msg.fields.deliveryTag, allUpTo === true]) } as unknown as Channel;
  return { channel, sent };
}

function delivery(tag: number): ConsumeMessage {
  return { fields: { deliveryTag: tag }, properties: {}, content: Buffer.alloc(0) } as unknown as ConsumeMessage;
}

describe('ChannelAcks', () => {
  it('acks a batch with one multiple ack when every earlier tag is settled', () => {
    const { channel, sent } = recordingChannel();
    const acks = new ChannelAcks(channel);
    const msgs = [1, 2, 3, 4].map(delivery);
    msgs.forEach((m) => acks.received(m));
    acks.ack(msgs);
    expect(sent).to.deep.equal([[4, true]]);
  });

  it('never covers a tag still open: multiple ack up to the lowest open one, single acks above it', () => {
    const { channel, sent } = recordingChannel();
    const acks = new ChannelAcks(channel);
    const msgs = [1, 2, 3, 4, 5, 6].map(delivery);
    msgs.forEach((m) => acks.received(m));
    // 3 is still being handled (or waits for its park copy).
    acks.ack([msgs[0]!, msgs[1]!, msgs[3]!, msgs[4]!, msgs[5]!]);
    expect(sent).to.deep.equal([
      [2, true],
      [4, false],
      [5, false],
      [6, false],
    ]);
    // Once 3 settles it is acked alone: a multiple ack of it would be the same, but 4-6 are gone already.
    sent.length = 0;
    acks.ack([msgs[2]!]);
    expect(sent).to.deep.equal([[3, false]]);
  });

  it('acks a lone message with a plain ack', () => {
    const { channel, sent } = recordingChannel();
    const acks = new ChannelAcks(channel);
    const [a, b] = [7, 8].map(delivery);
    acks.received(a!);
    acks.received(b!);
    acks.ack([b!]);
    acks.ack([a!]);
    expect(sent).to.deep.equal([
      [8, false],
      [7, false],
    ]);
  });

  it('covers tags acked before: only what is still unacked on the channel is open', () => {
    const { channel, sent } = recordingChannel();
    const acks = new ChannelAcks(channel);
    const msgs = [1, 2, 3, 4, 5].map(delivery);
    msgs.forEach((m) => acks.received(m));
    acks.ack([msgs[1]!]); // 2 alone: 1 is open
    acks.ack([msgs[0]!, msgs[2]!, msgs[4]!]); // 1 and 3 below the lowest open (4), 5 above it
    expect(sent).to.deep.equal([
      [2, false],
      [3, true],
      [5, false],
    ]);
  });
});
