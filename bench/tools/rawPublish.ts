import amqplib from 'amqplib';
import { nowMs } from '../lib/stats';
import { publishRequestOf, tweetEvent } from '../lib/tweets';

/**
 * Raw amqplib publishing, the ceiling of the relay: `count` tweet.created
 * messages, exactly as the relay publishes them (persistent, mandatory, same
 * properties and headers, exchange `tweets` -> quorum queue analytics.tweets),
 * on one confirm channel with at most `outstanding` unconfirmed. Also fills
 * the queue for the consume scenarios. With `rate`, message i goes out at
 * start + i/rate (a steady stream) instead of as fast as confirms allow.
 * Prints one JSON line.
 */
interface Input {
  amqpUrl: string;
  count: number;
  outstanding: number;
  firstIndex?: number;
  rate?: number;
}

async function main(): Promise<void> {
  const { amqpUrl, count, outstanding, firstIndex = 0, rate } = JSON.parse(process.argv[2] ?? '{}') as Input;
  const requests = Array.from({ length: count }, (_, i) => publishRequestOf(tweetEvent(firstIndex + i)));
  const conn = await amqplib.connect(amqpUrl, { noDelay: true });
  const ch = await conn.createConfirmChannel();
  let returned = 0;
  ch.on('return', () => returned++);
  let open = 0;
  let nacked = 0;
  let wake: (() => void) | undefined;
  const started = nowMs();
  for (const [i, req] of requests.entries()) {
    if (rate) {
      const wait = started + (i * 1000) / rate - nowMs();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    }
    while (open >= outstanding) await new Promise<void>((r) => (wake = r));
    open++;
    const fits = ch.publish(req.exchange, req.routingKey, req.content, { ...req.properties, persistent: true, mandatory: true }, (err) => {
      if (err) nacked++;
      open--;
      const w = wake;
      wake = undefined;
      w?.();
    });
    if (!fits) await new Promise<void>((r) => ch.once('drain', () => r()));
  }
  await ch.waitForConfirms();
  const seconds = (nowMs() - started) / 1000;
  await ch.close();
  await conn.close();
  process.stdout.write(JSON.stringify({ count, seconds, rate: count / seconds, returned, nacked }) + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
