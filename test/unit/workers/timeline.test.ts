/** @file The timeline worker's handler on SQLite (and PostgreSQL with WARREN_TEST_PG_URL): fan-out, backfill, unfollow, cap, order. */
import { expect } from 'chai';
import type { Knex } from 'knex';
import pino from 'pino';
import { newId } from '../../../src/domain/ids';
import type { MessageBody, WarrenMessage } from '../../../src/domain/messages';
import type { HandlerContext } from '../../../src/consume/handler';
import { loadConfig } from '../../../src/services';
import { ENTRIES_TABLE, RECENT_TWEETS_TABLE, SIZES_TABLE } from '../../../src/db/migrations/timeline';
import { readHomeTimeline } from '../../../src/db/repositories/timelines';
import { timelineWorker, timelineWorkerWith, trimSlack, type TimelineEvent } from '../../../src/workers/timeline';
import { timelineHttp } from '../../../src/workers/timelineHttp';
import { testBackends, type TestDatabase } from '../../support/databases';
import { freePort } from '../../support/harness';
import { serveWorkerHealth } from '../../../src/workers/health';
import * as grpc from '@grpc/grpc-js';
import { TimelineClient } from '../../../src/api/timelineClient';
import { grpcTransport } from '../../../src/api/timelineGrpcClient';
import { timelineService, type GetTimelineRequest } from '../../../src/api/timelineProto';
import { serveTimelineGrpc } from '../../../src/workers/timelineGrpc';

const ctx: HandlerContext = {
  log: pino({ level: 'silent' }),
  now: () => new Date('2026-11-25T12:00:00.000Z'),
  afterCommit: () => undefined,
  signal: new AbortController().signal,
};

const TABLES = ['follows', 'recent_tweets', 'authors', 'timeline_entries', 'timeline_sizes', 'processed_messages'];

let clock = Date.UTC(2026, 10, 25, 9, 0);
/** Event times that only move forward, as the API's clock gives them. */
const tick = () => new Date((clock += 1000)).toISOString();

function message<T extends TimelineEvent>(type: T, body: MessageBody<T>): WarrenMessage<T> {
  return { type, messageId: newId(), schemaVersion: type === 'user.unfollowed' ? '1.1' : '1.0', body } as WarrenMessage<T>;
}
const tweet = (authorId: string, handle: string, text = 'hello') =>
  message('tweet.created', { tweetId: newId(), authorId, authorHandle: handle, text, createdAt: tick() });
const followed = (followerId: string, followeeId: string, at = tick()) => message('user.followed', { followerId, followeeId, at });
const unfollowed = (followerId: string, followeeId: string, at = tick()) => message('user.unfollowed', { followerId, followeeId, at });

// Both SQLite drivers: better-sqlite3 binds no booleans by itself, and the follow graph has one.
const backends = testBackends('timeline', { service: 'timeline' }, ['sqlite3', 'better-sqlite3']);

describe('timelineWorker', () => {
  it('consumes tweets and user events from its own queue, in batches', () => {
    expect(timelineWorker.name).to.equal('timeline');
    expect(timelineWorker.queue).to.equal('timeline.events');
    expect(timelineWorker.bindings).to.deep.equal([
      { exchange: 'tweets', routingKey: 'tweet.created' },
      { exchange: 'user.events', routingKey: '' },
    ]);
    expect(timelineWorker.handles).to.include.members(['tweet.created', 'user.followed', 'user.unfollowed']);
    expect(timelineWorker.handleBatch).to.be.a('function');
    expect(timelineWorker.http, 'serves its timelines').to.be.an('object');
  });

  it('takes its cap from timeline.maxEntries (800 by default)', () => {
    expect(loadConfig({}).timeline).to.include({ maxEntries: 800, deadlineMs: 500, host: '127.0.0.1' });
    expect(loadConfig({ WARREN_TIMELINE_URLS: 'http://a:1, http://b:2/' }).timeline.urls).to.deep.equal(['http://a:1', 'http://b:2']);
    expect(() => loadConfig({ WARREN_TIMELINE_URLS: 'not a url' })).to.throw(/timeline\.urls/);
    expect(loadConfig({}).timeline).to.include({ protocol: 'rest', grpcPort: 3110 });
    expect(loadConfig({ WARREN_TIMELINE_PROTOCOL: 'grpc', WARREN_TIMELINE_GRPC_URLS: 'http://a:1,http://b:2' }).timeline).to.deep.include({
      protocol: 'grpc',
      grpcUrls: ['http://a:1', 'http://b:2'],
    });
    expect(() => loadConfig({ WARREN_TIMELINE_PROTOCOL: 'graphql' })).to.throw(/timeline\.protocol/);
    expect(() => loadConfig({ WARREN_TIMELINE_GRPC_URLS: 'https://a:1' })).to.throw(/timeline\.grpcUrls/);
  });

  for (const backend of backends) {
    describe(`on ${backend.name}`, () => {
      let testDb: TestDatabase;
      let db: Knex;
      const [ALICE, BOB, CAROL] = [newId(), newId(), newId()];

      before(async () => {
        testDb = await backend.open();
        db = testDb.db;
      });
      after(async () => {
        await testDb?.close();
      });
      beforeEach(async () => {
        for (const table of TABLES) await db(table).delete();
      });

      const worker = (maxEntries = 800) => timelineWorkerWith(maxEntries);
      const apply = (...messages: WarrenMessage<TimelineEvent>[]) => db.transaction((tx) => worker().handleBatch!(messages, tx, ctx));
      // Up to 100: the read fetches one more, to tell whether a next page exists.
      const ids = async (userId: string, maxEntries = 800) => (await readHomeTimeline(db, userId, { limit: 100 }, maxEntries)).slice(0, 100).map((t) => t.id);

      it("puts a tweet in its author's and each follower's timeline, with its author's handle and text", async () => {
        await apply(followed(BOB, ALICE));
        const t = tweet(ALICE, 'alice', 'first!');
        await apply(t);
        const [shown] = await readHomeTimeline(db, BOB, { limit: 20 }, 800);
        expect(shown).to.deep.equal({ id: t.body.tweetId, authorId: ALICE, authorHandle: 'alice', text: 'first!', createdAt: t.body.createdAt });
        expect(await ids(ALICE)).to.deep.equal([t.body.tweetId]);
        expect(await ids(CAROL)).to.deep.equal([]);
      });

      it("backfills the followee's recent tweets on a follow and removes them on an unfollow, keeping the follower's own", async () => {
        const bobs = [tweet(BOB, 'bob'), tweet(BOB, 'bob')];
        const own = tweet(ALICE, 'alice');
        await apply(...bobs, own);
        await apply(followed(ALICE, BOB));
        expect(await ids(ALICE)).to.deep.equal([own.body.tweetId, bobs[1]!.body.tweetId, bobs[0]!.body.tweetId]);
        await apply(unfollowed(ALICE, BOB));
        expect(await ids(ALICE)).to.deep.equal([own.body.tweetId]);
        expect(await db(SIZES_TABLE).where({ user_id: ALICE }).first('entries')).to.deep.equal({ entries: 1 });
        const later = tweet(BOB, 'bob');
        await apply(later);
        expect(await ids(ALICE), 'no longer a follower').to.deep.equal([own.body.tweetId]);
      });

      it('lets a late, older follow event change nothing after a newer unfollow, and the other way round', async () => {
        const t = tweet(BOB, 'bob');
        await apply(t);
        const followAt = tick();
        await apply(unfollowed(ALICE, BOB, tick()), followed(ALICE, BOB, followAt));
        expect(await ids(ALICE), 'the unfollow is the newer').to.deep.equal([]);
        const unfollowAt = tick();
        await apply(followed(CAROL, BOB, tick()), unfollowed(CAROL, BOB, unfollowAt));
        expect(await ids(CAROL), 'the follow is the newer').to.deep.equal([t.body.tweetId]);
      });

      it('shows the newest handle: a rename is applied, an older tweet does not undo it', async () => {
        const first = tweet(ALICE, 'alice');
        await apply(first);
        await apply(message('user.updated', { userId: ALICE, changes: { handle: { from: 'alice', to: 'alice2' } }, updatedAt: tick() }));
        const stale = message('tweet.created', { tweetId: newId(), authorId: ALICE, authorHandle: 'alice', text: 'late', createdAt: first.body.createdAt });
        await apply(stale);
        const shown = await readHomeTimeline(db, ALICE, { limit: 20 }, 800);
        expect(shown.map((s) => s.authorHandle)).to.deep.equal(['alice2', 'alice2']);
      });

      it('caps each timeline at maxEntries: reads show the newest ones, the store trims once past the slack', async () => {
        const cap = 10;
        const all: string[] = [];
        for (let i = 0; i < 3 * cap; i++) {
          const t = tweet(ALICE, 'alice');
          all.push(t.body.tweetId);
          await db.transaction((tx) => worker(cap).handle(t, tx, ctx));
          const stored = Number((await db(ENTRIES_TABLE).where({ user_id: ALICE }).count({ n: '*' }))[0]!.n);
          expect(stored).to.be.below(cap + trimSlack(cap));
          expect(await ids(ALICE, cap)).to.deep.equal(all.slice(-cap).reverse());
        }
        const recent = Number((await db(RECENT_TWEETS_TABLE).where({ author_id: ALICE }).count({ n: '*' }))[0]!.n);
        expect(recent, "the author's recent tweets are bounded too").to.be.below(cap + trimSlack(cap) + 1);
        // A follower's backfill takes at most the cap.
        await db.transaction((tx) => worker(cap).handle(followed(BOB, ALICE), tx, ctx));
        expect(await ids(BOB, cap)).to.deep.equal(all.slice(-cap).reverse());
      });

      it('gives the same timelines whether a random history is applied one message at a time or in batches of any size', async () => {
        const users = Array.from({ length: 6 }, () => newId());
        const history = randomHistory(users, 300, 42);
        const oneByOne = async () => {
          for (const m of history) await db.transaction((tx) => worker().handle(m, tx, ctx));
        };
        await oneByOne();
        const expected = expectedTimelines(users, history);
        for (const u of users) expect(await ids(u), 'one by one').to.deep.equal(expected.get(u));
        for (const table of TABLES) await db(table).delete();
        const rest = [...history];
        for (let size = 1; rest.length > 0; size = (size * 3) % 61 || 1) await apply(...rest.splice(0, size));
        for (const u of users) expect(await ids(u), 'batched').to.deep.equal(expected.get(u));
      });

      it('serves GET /timelines/:userId with the list shape and cursor rules of the API', async () => {
        const config = loadConfig({});
        const routes = timelineHttp.routes({ db, config, log: ctx.log });
        const sent: string[] = [];
        for (let i = 0; i < 5; i++) {
          const t = tweet(ALICE, 'alice');
          sent.unshift(t.body.tweetId);
          await apply(t);
        }
        const get = (query: string) => routes('GET', `/timelines/${ALICE}`, new URLSearchParams(query))!;
        const first = await get('limit=2');
        expect(first.status).to.equal(200);
        const page1 = first.body as { items: { id: string }[]; nextCursor: string | null };
        expect(page1.items.map((t) => t.id)).to.deep.equal(sent.slice(0, 2));
        const page2 = (await get(`limit=2&before=${page1.nextCursor}`)).body as typeof page1;
        const page3 = (await get(`limit=2&before=${page2.nextCursor}`)).body as typeof page1;
        expect([...page2.items, ...page3.items].map((t) => t.id)).to.deep.equal(sent.slice(2));
        expect(page3.nextCursor).to.equal(null);
        expect(((await get('')).body as typeof page1).items).to.have.length(5);
        for (const bad of ['limit=0', 'limit=101', 'limit=abc', 'limit=1&limit=2', 'before=nope', 'page=2']) {
          const res = await get(bad);
          expect(res.status, bad).to.equal(400);
          expect((res.body as { error: { code: string } }).error.code).to.equal('validation_failed');
        }
        expect((await routes('GET', '/timelines/not-a-uuid', new URLSearchParams())!).status).to.equal(404);
        expect(routes('GET', '/elsewhere', new URLSearchParams())).to.equal(undefined);
      });

      it('answers its routes beside the probes on its own port', async () => {
        await apply(tweet(ALICE, 'alice', 'served'));
        const config = loadConfig({});
        const server = await serveWorkerHealth({
          host: '127.0.0.1',
          port: await freePort(),
          status: () => ({ ready: true, consuming: true, detail: 'consuming' }) as never,
          routes: timelineHttp.routes({ db, config, log: ctx.log }),
          log: ctx.log,
        });
        try {
          const base = `http://127.0.0.1:${server!.port}`;
          const res = await fetch(`${base}/timelines/${ALICE}?limit=1`);
          expect(res.status).to.equal(200);
          expect(((await res.json()) as { items: { text: string }[] }).items[0]!.text).to.equal('served');
          expect((await fetch(`${base}/timelines/${ALICE}?limit=0`)).status).to.equal(400);
          expect((await fetch(`${base}/readyz`)).status).to.equal(200);
          expect((await fetch(`${base}/nowhere`)).status).to.equal(404);
        } finally {
          await server?.close();
        }
      });

      it('serves the same pages over gRPC as over REST, and the same refusals as statuses', async () => {
        const config = loadConfig({});
        for (let i = 0; i < 5; i++) await apply(tweet(ALICE, 'alice', `t${i}`));
        await apply(followed(BOB, ALICE));
        const routes = timelineHttp.routes({ db, config, log: ctx.log });
        const server = await serveTimelineGrpc({ host: '127.0.0.1', port: 0, db, config, log: ctx.log });
        const client = new TimelineClient({ urls: [`http://127.0.0.1:${server.port}`], deadlineMs: 2000, log: ctx.log, transport: grpcTransport });
        const raw = new (timelineService())(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
        const rawCall = (request: Partial<GetTimelineRequest>) =>
          new Promise<grpc.ServiceError | null>((resolve) =>
            (raw['GetTimeline'] as (r: Partial<GetTimelineRequest>, cb: (err: grpc.ServiceError | null) => void) => void).call(raw, request, resolve),
          );
        try {
          for (const user of [ALICE, BOB, CAROL]) {
            let before: string | undefined;
            do {
              const query = new URLSearchParams({ limit: '2', ...(before === undefined ? {} : { before }) });
              const rest = (await routes('GET', `/timelines/${user}`, query)!).body as { items: unknown[]; nextCursor: string | null };
              const overGrpc = await client.page(user, { limit: 2, ...(before === undefined ? {} : { before }) });
              expect(overGrpc, `${user} before ${before}`).to.deep.equal(rest);
              before = rest.nextCursor ?? undefined;
            } while (before !== undefined);
          }
          expect((await client.page(ALICE, { limit: 20 })).items).to.have.length(5);
          expect((await rawCall({ userId: ALICE }))?.code, 'limit unset: the default').to.equal(undefined);
          expect((await rawCall({ userId: ALICE, limit: 101 }))?.code).to.equal(grpc.status.INVALID_ARGUMENT);
          expect((await rawCall({ userId: ALICE, limit: 1, before: 'nope' }))?.code).to.equal(grpc.status.INVALID_ARGUMENT);
          expect((await rawCall({ userId: 'not-a-uuid', limit: 1 }))?.code).to.equal(grpc.status.NOT_FOUND);
        } finally {
          raw.close();
          await client.close();
          await server.close();
        }
      });
    });
  }
});

/** Follows, unfollows and tweets interleaved, with event times in order (the API's clock). */
function randomHistory(users: string[], n: number, seed: number): WarrenMessage<TimelineEvent>[] {
  let r = seed;
  const next = (k: number) => (r = (r * 1103515245 + 12345) % 2147483648) % k;
  const out: WarrenMessage<TimelineEvent>[] = [];
  const follows = new Set<string>();
  for (let i = 0; i < n; i++) {
    const a = users[next(users.length)]!;
    const b = users[next(users.length)]!;
    const kind = next(10);
    if (kind < 5 || a === b) out.push(tweet(a, `user_${users.indexOf(a)}`));
    else if (!follows.has(`${a} ${b}`)) {
      follows.add(`${a} ${b}`);
      out.push(followed(a, b));
    } else {
      follows.delete(`${a} ${b}`);
      out.push(unfollowed(a, b));
    }
  }
  return out;
}

/** What the API's old in-process query answered after `history`: each user's own and current followees' tweets, newest first. */
function expectedTimelines(users: string[], history: WarrenMessage<TimelineEvent>[]): Map<string, string[]> {
  const follows = new Set<string>();
  const tweets: { id: string; author: string }[] = [];
  for (const m of history) {
    if (m.type === 'tweet.created') tweets.push({ id: m.body.tweetId, author: m.body.authorId });
    else if (m.type === 'user.followed') follows.add(`${m.body.followerId} ${m.body.followeeId}`);
    else if (m.type === 'user.unfollowed') follows.delete(`${m.body.followerId} ${m.body.followeeId}`);
  }
  return new Map(
    users.map((u) => [
      u,
      tweets
        .filter((t) => t.author === u || follows.has(`${u} ${t.author}`))
        .map((t) => t.id)
        .sort()
        .reverse()
        .slice(0, 100),
    ]),
  );
}
