/** @file DLQs as lists of messages for the console's actions, needing no broker; taking follows src/ops/dlq.ts's rules (matches, staleBefore, onTaken). */
import type { GetMessage } from 'amqplib';
import type { IndexedDelivery } from '../../src/console/parkRecord';
import { parkedSince, type ReplayOptions, type ReplayResult } from '../../src/ops/dlq';

export class FakeDlqs {
  readonly queues = new Map<string, GetMessage[]>();
  calls: { queue: string; opts: ReplayOptions }[] = [];

  park(d: IndexedDelivery): void {
    const msg = {
      content: d.content,
      properties: d.properties,
      fields: { routingKey: d.routingKey, exchange: 'warren.dlx', deliveryTag: 0, redelivered: false, messageCount: 0 },
    } as unknown as GetMessage;
    this.queues.set(d.routingKey, [...(this.queues.get(d.routingKey) ?? []), msg]);
  }

  take = async (_url: string, queue: string, opts: ReplayOptions = {}): Promise<ReplayResult> => {
    this.calls.push({ queue, opts });
    const kept: GetMessage[] = [];
    let replayed = 0;
    let stale = 0;
    for (const msg of this.queues.get(queue) ?? []) {
      if (!(opts.matches?.(msg) ?? true)) kept.push(msg);
      else if (opts.staleBefore !== undefined && (parkedSince(msg.properties) ?? -Infinity) < opts.staleBefore) {
        stale++;
        kept.push(msg);
      } else {
        replayed++;
        opts.onTaken?.(msg);
      }
    }
    this.queues.set(queue, kept);
    return { replayed, skipped: kept.length, remaining: kept.length, interrupted: false, ...(opts.staleBefore !== undefined ? { stale } : {}) };
  };
}
