import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { type Config } from '../../src/config';
import { claimInboxRecord } from '../../src/db/inbox';
import { openDatabase } from '../../src/db/knex';
import { migrateAll, loadConfig } from '../../src/services';
import type { WarrenMessage } from '../../src/domain/messages';
import { extractHashtags, extractMentions } from '../../src/domain/text';
import { analyticsHandler } from '../../src/workers/analytics';
import { tweetEvent } from '../lib/tweets';
import { PG_ADMIN_URL } from '../lib/system';

/**
 * An experiment, not part of `npm run bench`: what the analytics effect costs
 * per message on each store, depending on how it is batched. Warren's own
 * handler one message per transaction, then N messages per transaction
 * (still one handler call, so ~7 statements, each), then the same effect for
 * a whole batch in one statement per table (counts summed in memory first).
 * The third shape is a measurement of an approach for the batched consumer,
 * not Warren's code. Run: `node dist/bench/experiments/analyticsStatements.js`.
 */
type Tweet = WarrenMessage<'tweet.created'>;

function messages(n: number, offset: number): Tweet[] {
  return Array.from({ length: n }, (_, i) => {
    const e = tweetEvent(offset + i);
    return { type: 'tweet.created', messageId: e.messageId, body: JSON.parse(e.payload), schemaVersion: '1.0' } as Tweet;
  });
}

async function perMessage(db: Knex, batch: Tweet[]): Promise<void> {
  await db.transaction(async (tx) => {
    for (const m of batch) if (await claimInboxRecord(tx, 'analytics', m.messageId)) await analyticsHandler(m, tx);
  });
}

function add<T extends { count: number }>(map: Map<string, T>, key: string, row: T): T {
  const seen = map.get(key);
  if (seen) {
    seen.count++;
    return seen;
  }
  map.set(key, row);
  return row;
}

/** The batch's effect in one statement per table; only messages whose inbox record is new count. */
async function setBased(db: Knex, batch: Tweet[]): Promise<void> {
  await db.transaction(async (tx) => {
    const inserted: { message_id: string }[] = await tx('processed_messages')
      .insert(batch.map((m) => ({ consumer: 'analytics', message_id: m.messageId, processed_at: Date.now() })))
      .onConflict(['consumer', 'message_id'])
      .ignore()
      .returning('message_id');
    const fresh = new Set(inserted.map((r) => r.message_id));
    const users = new Map<string, { user_id: string; handle: string; count: number; last_tweet_at: string }>();
    const userTags = new Map<string, { user_id: string; tag: string; count: number }>();
    const tags = new Map<string, { tag: string; count: number }>();
    const mentions = new Map<string, { user_id: string; handle: string; count: number }>();
    const hours = new Map<string, { hour: string; count: number }>();
    for (const m of batch) {
      if (!fresh.has(m.messageId)) continue;
      const { authorId, authorHandle, text, createdAt } = m.body;
      const at = new Date(createdAt).toISOString();
      const u = add(users, authorId, { user_id: authorId, handle: authorHandle, count: 1, last_tweet_at: at });
      if (at > u.last_tweet_at) u.last_tweet_at = at;
      for (const tag of extractHashtags(text)) {
        add(userTags, `${authorId} ${tag}`, { user_id: authorId, tag, count: 1 });
        add(tags, tag, { tag, count: 1 });
      }
      for (const handle of extractMentions(text)) add(mentions, `${authorId} ${handle}`, { user_id: authorId, handle, count: 1 });
      add(hours, at.slice(0, 13), { hour: at.slice(0, 13), count: 1 });
    }
    const plus = (table: string) => tx.raw('?? + excluded.??', [`${table}.count`, 'count']);
    if (users.size) {
      await tx('user_stats')
        .insert([...users.values()].map((u) => ({ user_id: u.user_id, handle: u.handle, tweet_count: u.count, last_tweet_at: u.last_tweet_at })))
        .onConflict('user_id')
        .merge({
          tweet_count: tx.raw('user_stats.tweet_count + excluded.tweet_count'),
          last_tweet_at: tx.raw(
            'CASE WHEN user_stats.last_tweet_at IS NULL OR user_stats.last_tweet_at <= excluded.last_tweet_at THEN excluded.last_tweet_at ELSE user_stats.last_tweet_at END',
          ),
        });
    }
    if (userTags.size)
      await tx('user_hashtags')
        .insert([...userTags.values()])
        .onConflict(['user_id', 'tag'])
        .merge({ count: plus('user_hashtags') });
    if (tags.size)
      await tx('hashtags')
        .insert([...tags.values()])
        .onConflict('tag')
        .merge({ count: plus('hashtags') });
    if (mentions.size)
      await tx('user_mentions')
        .insert([...mentions.values()])
        .onConflict(['user_id', 'handle'])
        .merge({ count: plus('user_mentions') });
    if (hours.size)
      await tx('tweets_per_hour')
        .insert([...hours.values()])
        .onConflict('hour')
        .merge({ count: plus('tweets_per_hour') });
  });
}

async function measure(label: string, config: Config): Promise<void> {
  await migrateAll(config);
  const db = openDatabase(config, 'analytics');
  let offset = 0;
  const shapes: [string, number, number, (db: Knex, b: Tweet[]) => Promise<void>][] = [
    ['Warren handler, 1 message per transaction', 1, 2000, perMessage],
    ['Warren handler, 100 messages per transaction', 100, 4000, perMessage],
    ['one statement per table, 100 messages per transaction', 100, 20000, setBased],
  ];
  try {
    for (const [shape, per, n, apply] of shapes) {
      const all = messages(n, offset);
      offset += n;
      const started = performance.now();
      for (let i = 0; i < n; i += per) await apply(db, all.slice(i, i + per));
      console.log(`${label}: ${shape}: ${Math.round(n / ((performance.now() - started) / 1000))} msg/s`);
    }
  } finally {
    await db.destroy();
  }
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-experiment-'));
  try {
    await measure('knex sqlite3 (synchronous=FULL)', loadConfig({ WARREN_DATABASE_CLIENT: 'sqlite', WARREN_DATABASE_DIR: dir }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const name = `warren_experiment_${process.pid}`;
  const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL });
  await admin.raw(`CREATE DATABASE ${name}`);
  try {
    const url = new URL(PG_ADMIN_URL);
    url.pathname = `/${name}`;
    await measure('knex pg', loadConfig({ WARREN_DATABASE_CLIENT: 'postgres', WARREN_DATABASE_URL: url.toString() }));
  } finally {
    await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
