import amqplib from 'amqplib';
import type { Options } from 'amqplib';
import { connectOnce } from '../../src/broker/connection';

/** A raw client, the way a foreign publisher or an operator's script would talk to the broker. */
export async function rawPublish(url: string, exchange: string, routingKey: string, content: Buffer | string, properties: Options.Publish = {}): Promise<void> {
  const conn = await amqplib.connect(url);
  try {
    const ch = await conn.createConfirmChannel();
    await new Promise<void>((resolve, reject) =>
      ch.publish(exchange, routingKey, Buffer.isBuffer(content) ? content : Buffer.from(content), { persistent: true, ...properties }, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    await ch.close();
  } finally {
    await conn.close();
  }
}

/** Takes up to `max` messages from a queue without removing them (closing the channel requeues them). */
export async function peek(url: string, queue: string, max = 10): Promise<amqplib.GetMessage[]> {
  const conn = await amqplib.connect(url);
  const out: amqplib.GetMessage[] = [];
  try {
    const ch = await conn.createChannel();
    for (let i = 0; i < max; i++) {
      const msg = await ch.get(queue, { noAck: false });
      if (!msg) break;
      out.push(msg);
    }
    await ch.close();
  } finally {
    await conn.close();
  }
  return out;
}

/** Exact depth and consumer count, straight from the broker (the management API's figures lag by seconds); of a node list, from the first node that answers. */
export async function queueStats(url: string, queue: string): Promise<{ messages: number; consumers: number }> {
  const conn = await connectOnce(url, 'test queue stats', 'inspect');
  try {
    const ch = await conn.createChannel();
    const ok = await ch.checkQueue(queue);
    await ch.close();
    return { messages: ok.messageCount, consumers: ok.consumerCount };
  } finally {
    await conn.close();
  }
}
