/** @file Copies of parked messages as the index queue delivers them, the way Warren's consumer and the broker write them; needs no service. */
import crypto from 'node:crypto';
import type { MessageProperties } from 'amqplib';
import type { IndexedDelivery } from '../../src/console/parkRecord';

export interface WarrenParkOptions {
  queue?: string;
  messageId?: string;
  body?: unknown;
  error?: string;
  kind?: 'permanent' | 'exhausted';
  lastFailure?: string;
  headers?: Record<string, unknown>;
}

function properties(messageId: string, headers: Record<string, unknown>): MessageProperties {
  return {
    messageId,
    type: 'tweet.created',
    contentType: 'application/json',
    contentEncoding: undefined,
    headers,
    deliveryMode: 2,
    priority: undefined,
    correlationId: 'req-1',
    replyTo: undefined,
    expiration: undefined,
    timestamp: 1_700_000_000,
    userId: undefined,
    appId: 'warren-api',
    clusterId: undefined,
  };
}

/** A park by Warren's consumer: Warren's headers, routed under the work queue's name. */
export function warrenPark(o: WarrenParkOptions = {}): IndexedDelivery {
  const queue = o.queue ?? 'analytics.tweets';
  const messageId = o.messageId ?? crypto.randomUUID();
  return {
    routingKey: queue,
    content: Buffer.from(typeof o.body === 'string' ? o.body : JSON.stringify(o.body ?? { tweetId: 't1', text: 'hello' })),
    properties: properties(messageId, {
      'x-schema-version': '1.0',
      ...o.headers,
      'x-warren-error': o.error ?? 'TransientError: database busy',
      'x-warren-error-kind': o.kind ?? 'exhausted',
      'x-warren-attempts': o.kind === 'permanent' ? 1 : 5,
      'x-warren-first-failure': '2026-01-01T00:00:00.000Z',
      'x-warren-last-failure': o.lastFailure ?? '2026-01-01T00:10:00.000Z',
      'x-warren-original-queue': queue,
      'x-warren-original-exchange': 'tweets',
      'x-warren-original-routing-key': 'tweet.created',
    }),
  };
}

/** A crash loop the broker dead-lettered past its delivery-limit: x-death only. */
export function brokerPark(o: { queue?: string; messageId?: string; body?: unknown; at?: number } = {}): IndexedDelivery {
  const queue = o.queue ?? 'analytics.tweets';
  const seconds = Math.floor((o.at ?? Date.parse('2026-01-02T00:00:00Z')) / 1000);
  return {
    routingKey: queue,
    content: Buffer.from(JSON.stringify(o.body ?? { tweetId: 'crash' })),
    properties: properties(o.messageId ?? crypto.randomUUID(), {
      'x-death': [
        { count: 1, reason: 'delivery_limit', queue, time: { '!': 'timestamp', value: seconds }, exchange: 'warren.return', 'routing-keys': [queue] },
      ],
      'x-first-death-reason': 'delivery_limit',
      'x-first-death-queue': queue,
    }),
  };
}
