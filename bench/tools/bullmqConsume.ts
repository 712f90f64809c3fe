import { Queue, Worker } from 'bullmq';
import { loadConfig } from '../../src/services';
import { claimInboxRecord } from '../../src/db/inbox';
import { openDatabase } from '../../src/db/knex';
import type { WarrenMessage } from '../../src/domain/messages';
import { analyticsHandler } from '../../src/workers/analytics';
import { nowMs } from '../lib/stats';
import { tweetEvent } from '../lib/tweets';

/**
 * The BullMQ peer: the same tweets as jobs in Redis, and a BullMQ worker
 * (concurrency 50) doing exactly what Warren's analytics worker does per
 * message: one knex transaction holding the inbox record and the analytics
 * upserts, on the same SQLite schema (a fresh, migrated directory).
 * Prints one JSON line; the Redis queue is obliterated afterwards.
 */
interface Input {
  redis: { host: string; port: number };
  queueName: string;
  count: number;
  concurrency: number;
  databaseDir: string;
  timeoutSec: number;
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '{}') as Input;
  const config = loadConfig({ WARREN_DATABASE_CLIENT: 'sqlite', WARREN_DATABASE_DIR: input.databaseDir });
  const db = openDatabase(config, 'analytics');
  const queue = new Queue(input.queueName, { connection: input.redis });
  for (let i = 0; i < input.count; i += 1000) {
    const jobs = Array.from({ length: Math.min(1000, input.count - i) }, (_, k) => {
      const e = tweetEvent(i + k);
      return {
        name: 'tweet.created',
        data: { messageId: e.messageId, body: JSON.parse(e.payload) as unknown },
        opts: { removeOnComplete: true, removeOnFail: true },
      };
    });
    await queue.addBulk(jobs);
  }
  let first = 0;
  let done = 0;
  let failed = 0;
  let finished!: () => void;
  const allDone = new Promise<void>((r) => (finished = r));
  const worker = new Worker(
    input.queueName,
    async (job) => {
      if (first === 0) first = nowMs();
      const message = { type: 'tweet.created', messageId: job.data.messageId, body: job.data.body, schemaVersion: '1.0' } as WarrenMessage<'tweet.created'>;
      await db.transaction(async (tx) => {
        if (await claimInboxRecord(tx, 'analytics', message.messageId)) await analyticsHandler(message, tx);
      });
    },
    { connection: input.redis, concurrency: input.concurrency },
  );
  const settle = () => {
    if (done + failed >= input.count) finished();
  };
  worker.on('completed', () => {
    done++;
    settle();
  });
  worker.on('failed', () => {
    failed++;
    settle();
  });
  const timer = setTimeout(finished, input.timeoutSec * 1000);
  await allDone;
  const last = nowMs();
  clearTimeout(timer);
  await worker.close();
  await queue.obliterate({ force: true }).catch(() => undefined);
  await queue.close();
  await db.destroy();
  const seconds = (last - first) / 1000;
  process.stdout.write(JSON.stringify({ done, failed, seconds, rate: done / seconds }) + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
