/**
 * @file 8. Console search: the operator console's search over 100,000
 * indexed parks, as GET /api/v1/parked runs it (searchParked), on SQLite
 * (the default driver) and on PostgreSQL: a phrase that matches nothing, a
 * rare one, a common one, and a filter by queue and reason. Each case runs
 * with the trigram index (migration 003) and, on the same rows in the same
 * run, without it, as the console searched before (LIKE over every row the
 * other filters leave); both must find the same first page. Target: p95 at
 * most 200 ms. Needs no broker: the index is filled the way the indexer
 * fills it (parkRecord, indexParks), in databases of its own.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import type { BenchContext } from '../lib/context';
import type { ScenarioResult } from '../lib/report';
import { fmt, nowMs, percentile } from '../lib/stats';
import { indexParks, searchParked, type ParkedPage } from '../../src/console/parkedIndex';
import { parkRecord } from '../../src/console/parkRecord';
import { parkedListQuery, type ParkedListQuery } from '../../src/console/parkedQuery';
import { openDatabase } from '../../src/db/knex';
import { loadConfig, migrateService } from '../../src/services';

const PARKS = Number(process.env.BENCH_CONSOLE_PARKS) > 0 ? Number(process.env.BENCH_CONSOLE_PARKS) : 100_000;
const QUERIES = 40;
const TARGET_P95_MS = 200;
const QUEUES = ['analytics.tweets', 'notifications.user-events', 'timeline.events'];
const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];
/** BENCH_CONSOLE_STORES=sqlite leaves PostgreSQL out. */
const STORES = (process.env.BENCH_CONSOLE_STORES ?? 'sqlite,postgres').split(',').filter((s): s is 'sqlite' | 'postgres' => s === 'sqlite' || s === 'postgres');

/** A park of about 2.3 KB of body, as a worker would park a tweet event after its retries. */
function park(i: number) {
  const at = new Date(Date.parse('2026-01-01T00:00:00Z') + i * 1000).toISOString();
  const text = Array.from({ length: 300 }, (_, k) => WORDS[(i * 7 + k * 13) % WORDS.length]).join(' ');
  // One message in 10,000 carries a rare word.
  const body = { tweetId: crypto.randomUUID(), authorId: crypto.randomUUID(), text: i % 10_000 === 7 ? `${text} zanzibar` : text, createdAt: at };
  return parkRecord({
    content: Buffer.from(JSON.stringify(body)),
    routingKey: QUEUES[i % QUEUES.length]!,
    properties: {
      messageId: crypto.randomUUID(),
      type: 'tweet.created',
      contentType: 'application/json',
      headers: {
        'x-warren-error': i % 3 === 0 ? 'TransientError: database busy' : `PermanentError: bad payload ${i}`,
        'x-warren-error-kind': i % 3 === 0 ? 'exhausted' : 'permanent',
        'x-warren-attempts': 5,
        'x-warren-first-failure': at,
        'x-warren-last-failure': at,
        'x-warren-original-queue': QUEUES[i % QUEUES.length],
      },
    } as never,
  });
}

const CASES: [string, Record<string, string>][] = [
  ['a phrase that matches nothing', { q: 'no such phrase anywhere' }],
  ['a rare word (1 park in 10,000)', { q: 'zanzibar' }],
  ['a common word', { q: 'foxtrot' }],
  ['queue and reason, no phrase', { queue: 'analytics.tweets', reason: 'database busy' }],
];

type Search = (query: ParkedListQuery) => Promise<ParkedPage>;

async function timed(search: Search, query: ParkedListQuery): Promise<{ p50: number; p95: number; page: ParkedPage }> {
  let page = await search(query); // warm the page cache
  const times: number[] = [];
  for (let n = 0; n < QUERIES; n++) {
    const t = nowMs();
    page = await search(query);
    times.push(nowMs() - t);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 50), p95: percentile(times, 95), page };
}

/** Fills the index with PARKS parks as the indexer would, in batches of 2,000; returns the seconds it took. */
async function fill(db: Knex): Promise<number> {
  const start = nowMs();
  for (let i = 0; i < PARKS; i += 2000)
    await indexParks(
      db,
      Array.from({ length: Math.min(2000, PARKS - i) }, (_, k) => park(i + k)),
      Date.now(),
    );
  return (nowMs() - start) / 1000;
}

async function measure(label: string, before: Search, after: Search, rows: ScenarioResult['rows']): Promise<void> {
  for (const [caseLabel, filter] of CASES) {
    const query = parkedListQuery.parse(filter);
    const old = await timed(before, query);
    const now = await timed(after, query);
    const same = JSON.stringify(old.page.items.map((i) => i.id)) === JSON.stringify(now.page.items.map((i) => i.id));
    if (!same) throw new Error(`${label}, ${caseLabel}: the indexed search found another first page than LIKE alone`);
    rows.push({
      measure: `${label}: search p50 / p95, ${caseLabel} (${now.page.items.length} on the first page)`,
      warren: `${fmt(now.p50, 1)} / ${fmt(now.p95, 1)} ms`,
      reference: `${fmt(old.p50, 1)} / ${fmt(old.p95, 1)} ms without the index`,
      target: `p95 ≤ ${TARGET_P95_MS} ms`,
      met: now.p95 <= TARGET_P95_MS,
    });
  }
}

export async function consoleSearch(ctx: BenchContext): Promise<ScenarioResult> {
  const rows: ScenarioResult['rows'] = [];
  const notes: string[] = [];
  if (STORES.includes('sqlite')) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-bench-console-'));
    const config = loadConfig({ WARREN_DATABASE_DIR: dir });
    const db = openDatabase(config, 'console');
    try {
      await migrateService(db, 'console', config);
      const seconds = await fill(db);
      await measure(
        'SQLite',
        (q) => searchParked(db, q, undefined, { trigramIndex: false }),
        (q) => searchParked(db, q),
        rows,
      );
      const size = fs.statSync(path.join(dir, 'console.sqlite')).size;
      notes.push(
        `SQLite (driver ${config.database.sqliteDriver}, the configured default), a directory of its own: ${fmt(PARKS)} parks of about 2.3 KB each indexed in ${fmt(seconds, 1)} s (indexParks, batches of 2,000, the FTS5 trigram table filled in the same transactions); the file is ${fmt(size / 2 ** 20, 0)} MiB.`,
      );
    } finally {
      await db.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  if (STORES.includes('postgres')) {
    const store = await ctx.sys.postgresStore('console-search');
    const db = openDatabase(store.config, 'console');
    try {
      const seconds = await fill(db);
      // What autovacuum does within a minute of such a fill: the planner's statistics, by which it picks the GIN index or the newest-first scan.
      await db.raw('ANALYZE parked_messages');
      const withoutIndex: Search = (q) =>
        db.transaction(async (tx) => {
          // The GIN index is read only by bitmap scans.
          await tx.raw('SET LOCAL enable_bitmapscan = off');
          return searchParked(tx, q, undefined, { trigramIndex: false });
        });
      await measure('PostgreSQL', withoutIndex, (q) => searchParked(db, q), rows);
      const size = (
        (await db.raw("SELECT pg_total_relation_size('parked_messages') AS bytes, pg_relation_size('parked_messages_search_trgm') AS gin")) as {
          rows: { bytes: string; gin: string }[];
        }
      ).rows[0]!;
      notes.push(
        `PostgreSQL (${store.label}, a database of its own on the machine's server): the same ${fmt(PARKS)} parks indexed in ${fmt(seconds, 1)} s, then ANALYZE; the table with its indexes is ${fmt(Number(size.bytes) / 2 ** 20, 0)} MiB, of which the pg_trgm GIN index ${fmt(Number(size.gin) / 2 ** 20, 0)} MiB. Without the index: the same query with bitmap scans off, the only way PostgreSQL reads a GIN index.`,
      );
    } finally {
      await db.destroy();
    }
  }
  notes.push(
    `${QUERIES} queries per case after one warm-up, first page (20) as GET /api/v1/parked answers it; with and without the trigram index on the same rows, one after the other, and both found the same first page. BENCH_CONSOLE_PARKS changes the count, BENCH_CONSOLE_STORES=sqlite leaves PostgreSQL out.`,
  );
  return { id: 'console-search', title: '8. Console search', rows, notes };
}
