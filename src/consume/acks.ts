import type { Channel, ConsumeMessage } from 'amqplib';
import type { AckChannel } from './delivery';

/**
 * The delivery tags of one channel that are not settled yet, so that a batch
 * can be acked with one `basic.ack multiple` where that is safe. A multiple
 * ack of tag T acks every unacked tag <= T on the channel, including one
 * still being handled, or held unacked because its retry or park copy is not
 * confirmed: so it is sent only up to the lowest tag still open, and every
 * tag above that is acked alone.
 */
export class ChannelAcks implements AckChannel {
  /** Tags delivered and not yet acked or given up, in delivery order (tags only grow). */
  private readonly open = new Set<number>();
  private isClosed = false;

  constructor(readonly channel: Channel) {}

  get closed(): boolean {
    return this.isClosed;
  }

  /** The channel closed: the broker requeued everything it held, and nothing is acked on it any more. */
  close(): void {
    this.isClosed = true;
  }

  received(msg: ConsumeMessage): void {
    this.open.add(msg.fields.deliveryTag);
  }

  /**
   * Acks `msgs` (all delivered on this channel, their effects committed):
   * one multiple ack up to the lowest tag still open, single acks above it.
   * Throws what the channel throws (closed): nothing is acked then.
   */
  ack(msgs: readonly ConsumeMessage[]): void {
    if (msgs.length === 0) return;
    for (const m of msgs) this.open.delete(m.fields.deliveryTag);
    const lowestOpen = this.lowestOpen();
    let upTo: ConsumeMessage | undefined;
    const alone: ConsumeMessage[] = [];
    for (const m of msgs) {
      if (m.fields.deliveryTag < lowestOpen) {
        if (!upTo || m.fields.deliveryTag > upTo.fields.deliveryTag) upTo = m;
      } else {
        alone.push(m);
      }
    }
    // One message below the lowest open tag: a plain ack says the same and is easier to read in a capture.
    const below = msgs.length - alone.length;
    if (upTo) this.channel.ack(upTo, below > 1);
    for (const m of alone) this.channel.ack(m);
  }

  /** Set iteration follows insertion, which is delivery order; the first is the lowest. */
  private lowestOpen(): number {
    for (const tag of this.open) return tag;
    return Infinity;
  }
}
