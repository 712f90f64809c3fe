/**
 * @file 8. Console search: the operator console's search over 100,000
 * indexed parks on SQLite (the default driver), as GET /api/v1/parked runs
 * it (searchParked): a phrase that matches nothing (every row scanned), a
 * rare one, a common one, and a filter by queue and reason. Target: p95 at
 * most 200 ms. Needs no broker: the index is filled the way the indexer
 * fills it (parkRecord, indexParks), in a database of its own.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchContext } from '../lib/context';
import type { ScenarioResult } from '../lib/report';
import { fmt, nowMs, percentile } from '../lib/stats';
import { indexParks, searchParked } from '../../src/console/parkedIndex';
import { parkRecord } from '../../src/console/parkRecord';
import { parkedListQuery } from '../../src/console/parkedQuery';
import { openDatabase } from '../../src/db/knex';
import { loadConfig, migrateService } from '../../src/services';

const PARKS = Number(process.env.BENCH_CONSOLE_PARKS) > 0 ? Number(process.env.BENCH_CONSOLE_PARKS) : 100_000;
const QUERIES = 40;
const TARGET_P95_MS = 200;
const QUEUES = ['analytics.tweets', 'notifications.user-events', 'timeline.events'];
const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];

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

export async function consoleSearch(_ctx: BenchContext): Promise<ScenarioResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-bench-console-'));
  const config = loadConfig({ WARREN_DATABASE_DIR: dir });
  const db = openDatabase(config, 'console');
  try {
    await migrateService(db, 'console', config);
    const fillStart = nowMs();
    for (let i = 0; i < PARKS; i += 2000)
      await indexParks(
        db,
        Array.from({ length: Math.min(2000, PARKS - i) }, (_, k) => park(i + k)),
        Date.now(),
      );
    const fillSeconds = (nowMs() - fillStart) / 1000;
    const cases: [string, Record<string, string>][] = [
      ['a phrase that matches nothing (every row scanned)', { q: 'no such phrase anywhere' }],
      ['a rare word (1 park in 10,000)', { q: 'zanzibar' }],
      ['a common word', { q: 'foxtrot' }],
      ['queue and reason, no phrase', { queue: 'analytics.tweets', reason: 'database busy' }],
    ];
    const rows: ScenarioResult['rows'] = [];
    const notes: string[] = [];
    for (const [label, filter] of cases) {
      const query = parkedListQuery.parse(filter);
      await searchParked(db, query); // warm the page cache
      const times: number[] = [];
      let found = 0;
      for (let n = 0; n < QUERIES; n++) {
        const t = nowMs();
        found = (await searchParked(db, query)).items.length;
        times.push(nowMs() - t);
      }
      times.sort((a, b) => a - b);
      const p95 = percentile(times, 95);
      rows.push({
        measure: `search p50 / p95, ${label}`,
        warren: `${fmt(percentile(times, 50), 1)} / ${fmt(p95, 1)} ms`,
        reference: `${found} on the first page`,
        target: `p95 ≤ ${TARGET_P95_MS} ms`,
        met: p95 <= TARGET_P95_MS,
      });
    }
    notes.push(
      `${fmt(PARKS)} parks of about 2.3 KB each indexed in ${fmt(fillSeconds, 1)} s (indexParks, batches of 2,000), SQLite with the default driver (node sqlite3) in a directory of its own; ${QUERIES} queries per case after one warm-up, first page (20) as GET /api/v1/parked answers it. BENCH_CONSOLE_PARKS changes the count.`,
    );
    return { id: 'console-search', title: '8. Console search', rows, notes };
  } finally {
    await db.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
