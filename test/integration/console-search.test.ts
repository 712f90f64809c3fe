/** @file
 * Search with the trigram index finds exactly what LIKE alone found before
 * it (migration 003): a few hundred random parks and random queries (their
 * own substrings, across words and punctuation, in other case, with LIKE's
 * wildcards and the FTS5 query language's quotes), on SQLite with both
 * drivers and on PostgreSQL (when WARREN_TEST_PG_URL is set, with its GIN
 * index forced), each also against the plain rule: the lower-cased query
 * is contained in the lower-cased body and headers.
 */
import { expect } from 'chai';
import type { Knex } from 'knex';
import { countSelected, indexParks, searchParked, searchPlan, type SearchPlanOptions } from '../../src/console/parkedIndex';
import { parkRecord, type ParkRecord } from '../../src/console/parkRecord';
import { decodePageCursor, parkedListQuery } from '../../src/console/parkedQuery';
import { PARKED_TABLE } from '../../src/db/migrations/console';
import { testBackends, type TestDatabase } from '../support/databases';
import { warrenPark } from '../support/parks';

const PARKS = 300;
const QUERIES = 200;
const WORDS = [
  'Ada',
  'lovelace',
  'ÉCOLE',
  'straße',
  'İstanbul',
  'naïve',
  '100%',
  'snake_case',
  'back\\slash',
  '"quoted"',
  'a-b.c',
  'x',
  'ok',
  '🙂smile',
  'ΣΊΣΥΦΟΣ',
];
const PUNCTUATION = [' ', ', ', '. ', '; ', ' (', ') ', ' / ', '\n', '\t'];

/** A small deterministic generator (mulberry32): a failure names its seed and runs again the same. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env.WARREN_TEST_SEED) || Date.now() % 1_000_000;

for (const backend of testBackends('console', { service: 'console' }, ['sqlite3', 'better-sqlite3'])) {
  describe(`console: search with the trigram index finds what LIKE alone does (integration, ${backend.name}, seed ${SEED})`, function () {
    // 200 queries, each searched four ways page by page: minutes on a loaded machine's PostgreSQL.
    this.timeout(600_000);
    const rnd = random(SEED);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)]!;
    let database: TestDatabase;
    let db: Knex;
    const records: ParkRecord[] = [];
    const postgres = backend.name === 'PostgreSQL';

    const sentence = (n: number) => Array.from({ length: n }, () => pick(WORDS) + pick(PUNCTUATION)).join('');

    before(async function () {
      database = await backend.open();
      db = database.db;
      for (let i = 0; i < PARKS; i++) {
        const record = parkRecord(
          warrenPark({
            queue: pick(['analytics.tweets', 'notifications.user-events']),
            body: rnd() < 0.1 ? `not json: ${sentence(3)}` : { tweetId: `t${i}`, text: sentence(1 + Math.floor(rnd() * 12)) },
            error: `PermanentError: ${sentence(2)}`,
            lastFailure: new Date(Date.parse('2026-01-01T00:00:00Z') + Math.floor(rnd() * 86_400_000)).toISOString(),
            headers: rnd() < 0.5 ? { 'x-note': sentence(2) } : {},
          }),
        );
        records.push(record);
      }
      // In batches, as the indexer commits them.
      for (let i = 0; i < records.length; i += 50) await indexParks(db, records.slice(i, i + 50), Date.now());
      if (postgres) await db.raw('ANALYZE ??', [PARKED_TABLE]);
    });

    after(async function () {
      await database?.close();
    });

    /** Every id the search selects, page by page, as the list walks them. */
    async function allPages(q: string, opts: SearchPlanOptions, run: (fn: (tx: Knex) => Promise<unknown>) => Promise<unknown> = (fn) => fn(db)) {
      const ids: string[] = [];
      let before: string | undefined;
      do {
        const query = parkedListQuery.parse({ q, limit: '100', ...(before ? { before } : {}) });
        const page = (await run((tx) => searchParked(tx, query, before ? decodePageCursor(before) : undefined, opts))) as Awaited<
          ReturnType<typeof searchParked>
        >;
        ids.push(...page.items.map((i) => i.id));
        before = page.nextCursor ?? undefined;
      } while (before);
      return ids;
    }

    /** PostgreSQL: only the GIN index may answer (no sequential scan, no other index). */
    const onlyTheGinIndex = async <T>(fn: (tx: Knex) => Promise<T>): Promise<T> =>
      db.transaction(async (tx) => {
        await tx.raw('SET LOCAL enable_seqscan = off');
        await tx.raw('SET LOCAL enable_indexscan = off');
        return fn(tx);
      });

    function queries(): string[] {
      const out = ['zzz-not-there', '%', '_', '\\', '""', '"quoted"', 'ß', 'STRASSE', '100%', 'snake_case', 'İ', 'i̇', 'σ', 'ς', '🙂', 'ab', 'a'];
      while (out.length < QUERIES) {
        const text = pick(records).searchText;
        const chars = Array.from(text);
        const start = Math.floor(rnd() * chars.length);
        let q = chars.slice(start, start + 1 + Math.floor(rnd() * 12)).join('');
        if (rnd() < 0.4) q = q.toUpperCase();
        if (rnd() < 0.1) q = `${q}${pick(WORDS)}`;
        if (q.trim() === q && q.length > 0) out.push(q);
      }
      return out;
    }

    it('finds the same parks page by page, and counts them the same, for every query', async function () {
      const ids = new Map<string, string>();
      for (const r of (await db(PARKED_TABLE).select('id', 'park_key')) as { id: string; park_key: string }[]) ids.set(r.park_key, r.id);
      let narrowed = 0;
      for (const q of queries()) {
        const expected = records
          .filter((r) => r.searchText.includes(q.toLowerCase()))
          .map((r) => ids.get(r.parkKey)!)
          .sort();
        const withIndex = await allPages(q, {});
        const likeAlone = await allPages(q, { trigramIndex: false });
        expect(withIndex, `q=${JSON.stringify(q)}: with the index against LIKE alone`).to.deep.equal(likeAlone);
        expect([...withIndex].sort(), `q=${JSON.stringify(q)}: against the plain rule`).to.deep.equal(expected);
        if (postgres) expect(await allPages(q, {}, onlyTheGinIndex), `q=${JSON.stringify(q)}: the GIN index alone`).to.deep.equal(likeAlone);
        const filter = parkedListQuery.parse({ q });
        expect((await countSelected(db, filter)).total, `q=${JSON.stringify(q)}: count`).to.equal(expected.length);
        if ((await searchPlan(db, filter)).searchRowids) narrowed++;
      }
      // SQLite: every query of three characters or more went through the FTS5 table.
      if (!postgres) expect(narrowed).to.be.greaterThan(QUERIES / 2);
    });

    it('keeps the trigram index in step with every park indexed, a repeated copy adding nothing', async function () {
      const fresh = parkRecord(warrenPark({ body: { text: 'quokka-unique-word' } }));
      expect(await indexParks(db, [fresh, fresh], Date.now())).to.equal(1);
      expect(await indexParks(db, [fresh], Date.now())).to.equal(0);
      const found = await allPages('QUOKKA-unique', {});
      expect(found).to.have.length(1);
      if (!postgres) expect((await searchPlan(db, parkedListQuery.parse({ q: 'quokka-unique' }))).searchRowids).to.have.length(1);
    });

    if (postgres)
      it('has PostgreSQL read the GIN index for a phrase when nothing else may answer', async function () {
        const plan = await onlyTheGinIndex(async (tx) =>
          ((await tx.raw(`EXPLAIN SELECT id FROM ${PARKED_TABLE} WHERE search_text LIKE '%lovelace%'`)) as { rows: Record<string, string>[] }).rows
            .map((r) => Object.values(r)[0])
            .join('\n'),
        );
        expect(plan).to.include('parked_messages_search_trgm');
      });
  });
}
