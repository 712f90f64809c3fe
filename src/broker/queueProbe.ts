import type { Channel } from 'amqplib';
import type { BrokerConnection } from './connection';

export type QueueProbe = { queue: string; ok: true; messages: number; consumers: number } | { queue: string; ok: false; error: string };

/**
 * Exact depth and consumer count of queues, asked over AMQP (passive
 * declare): the management API's figures lag by its stats interval. A
 * missing queue closes the channel it was asked on, so each failure gets a
 * fresh one.
 */
export async function probeQueues(connection: BrokerConnection, queues: string[]): Promise<QueueProbe[]> {
  const model = connection.manager.connection;
  if (!model) return queues.map((queue) => ({ queue, ok: false, error: 'broker not connected' }));
  const results: QueueProbe[] = [];
  let channel: Channel | undefined;
  for (const queue of queues) {
    try {
      channel ??= await model.createChannel();
      channel.on('error', () => undefined); // a 404 is an answer here, not a fault
      const ok = await channel.checkQueue(queue);
      results.push({ queue, ok: true, messages: ok.messageCount, consumers: ok.consumerCount });
    } catch (err) {
      results.push({ queue, ok: false, error: (err as Error).message });
      channel = undefined;
    }
  }
  await channel?.close().catch(() => undefined);
  return results;
}
