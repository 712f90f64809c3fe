import amqplib from 'amqplib';
import { buildEvent } from '../../src/domain/messages';
import { serveCeiling } from './ceilingApp';

/**
 * Ceiling 2: what people write by hand. The bare-Koa handler plus one
 * persistent, mandatory publish per request on a shared confirm channel,
 * answered once the broker confirmed it. No outbox: a broker outage fails
 * the request. Input: `{ port, amqpUrl, queue }`.
 */
async function main(): Promise<void> {
  const { port, amqpUrl, queue } = JSON.parse(process.argv[2] ?? '{}') as { port: number; amqpUrl: string; queue: string };
  const conn = await amqplib.connect(amqpUrl, { noDelay: true });
  const ch = await conn.createConfirmChannel();
  await serveCeiling(port, async (tweet) => {
    const event = buildEvent('tweet.created', {
      tweetId: tweet.id,
      authorId: tweet.authorId,
      authorHandle: tweet.authorHandle,
      text: tweet.text,
      createdAt: tweet.createdAt,
    });
    await new Promise<void>((resolve, reject) =>
      ch.publish(
        '',
        queue,
        Buffer.from(event.payload),
        {
          persistent: true,
          mandatory: true,
          messageId: event.messageId,
          type: event.type,
          contentType: 'application/json',
          headers: { 'x-schema-version': event.schemaVersion, traceparent: event.traceparent },
        },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
