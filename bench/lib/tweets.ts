import { buildEvent, type OutgoingEvent } from '../../src/domain/messages';
import { newId } from '../../src/domain/ids';
import { toPublishRequest } from '../../src/outbox/relay';
import type { PublishRequest } from '../../src/broker/publisher';
import type { OutboxRow } from '../../src/outbox/store';

/**
 * The benchmark's tweets: ~200-byte `tweet.created` bodies with a hashtag and
 * a mention, spread over a few hundred authors, built with Warren's own event
 * builder so every consumer accepts them.
 */
export const AUTHORS = 500;

export function tweetText(i: number): string {
  return `Benchmark tweet ${i}: queues, confirms and group commit #bench${i % 40} #warren with @user_${i % 97}`;
}

export function tweetEvent(i: number, now = new Date()): OutgoingEvent {
  const author = i % AUTHORS;
  return buildEvent(
    'tweet.created',
    {
      tweetId: newId(),
      authorId: `00000000-0000-7000-8000-${String(author).padStart(12, '0')}`,
      authorHandle: `author_${author}`,
      text: tweetText(i),
      createdAt: now.toISOString(),
    },
    { now },
  );
}

/** The AMQP publish Warren's relay would make for this event (same properties, headers, exchange). */
export function publishRequestOf(event: OutgoingEvent, seq = 0): PublishRequest {
  const row: OutboxRow = {
    seq,
    message_id: event.messageId,
    type: event.type,
    exchange: event.exchange,
    routing_key: event.routingKey,
    payload: event.payload,
    correlation_id: event.correlationId,
    traceparent: event.traceparent,
    tracestate: event.tracestate ?? null,
    schema_version: event.schemaVersion,
    created_at: event.createdAt.getTime(),
    attempts: 0,
  };
  return toPublishRequest(row);
}
