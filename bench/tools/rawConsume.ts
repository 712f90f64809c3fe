import amqplib from 'amqplib';
import { nowMs } from '../lib/stats';

/**
 * Raw amqplib consuming, the ceiling of a worker: manual ack of every
 * delivery and nothing else, at `prefetch`, until `count` were acked (or
 * `timeoutSec` passed). The clock runs from the first delivery to the last
 * ack. Prints one JSON line.
 */
interface Input {
  amqpUrl: string;
  queue: string;
  prefetch: number;
  count: number;
  timeoutSec: number;
}

async function main(): Promise<void> {
  const { amqpUrl, queue, prefetch, count, timeoutSec } = JSON.parse(process.argv[2] ?? '{}') as Input;
  const conn = await amqplib.connect(amqpUrl, { noDelay: true });
  const ch = await conn.createChannel();
  await ch.prefetch(prefetch);
  let acked = 0;
  let first = 0;
  let last = 0;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutSec * 1000);
    void ch.consume(queue, (msg) => {
      if (!msg) return;
      if (first === 0) first = nowMs();
      ch.ack(msg);
      acked++;
      if (acked >= count) {
        last = nowMs();
        clearTimeout(timer);
        resolve();
      }
    });
  });
  if (!last) last = nowMs();
  // Closing waits for the acks to be written; nothing is left unacked.
  await ch.close();
  await conn.close();
  const seconds = (last - first) / 1000;
  process.stdout.write(JSON.stringify({ acked, seconds, rate: acked / seconds }) + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
