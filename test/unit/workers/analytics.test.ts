import { expect } from 'chai';
import type { Knex } from 'knex';
import pino from 'pino';
import { PermanentError } from '../../../src/domain/errors';
import { newId } from '../../../src/domain/ids';
import type { MessageBody, WarrenMessage } from '../../../src/domain/messages';
import { analyticsWorker, tallyTweets } from '../../../src/workers/analytics';
import type { HandlerContext } from '../../../src/consume/handler';
import { testBackends, type TestDatabase } from '../../support/databases';

const ALICE = newId();
const BOB = newId();
const CAROL = newId();
/** Each read-model table and its primary key. */
const KEYS: Record<string, string[]> = {
  user_stats: ['user_id'],
  user_hashtags: ['user_id', 'tag'],
  user_mentions: ['user_id', 'handle'],
  hashtags: ['tag'],
  tweets_per_hour: ['hour'],
};
const TABLES = Object.keys(KEYS);
const ctx: HandlerContext = {
  log: pino({ level: 'silent' }),
  now: () => new Date('2026-11-25T12:00:00.000Z'),
  afterCommit: () => undefined,
  signal: new AbortController().signal,
};

function tweetCreated(body: Partial<MessageBody<'tweet.created'>>): WarrenMessage<'tweet.created'> {
  return {
    type: 'tweet.created',
    messageId: newId(),
    schemaVersion: '1.0',
    body: { tweetId: newId(), authorId: ALICE, authorHandle: 'alice', text: 'hello', createdAt: '2026-11-25T09:15:00.000Z', ...body },
  };
}

/** Databases the suite owns, emptied before each test. */
const backends = testBackends('analytics', { service: 'analytics' });

/**
 * Tweets of three users over a few hours, out of order, with ties, changed
 * handles, mixed-case hashtags and mentions; `seed` varies them.
 */
function corpus(n: number, seed: number): WarrenMessage<'tweet.created'>[] {
  const authors = [ALICE, BOB, CAROL];
  const tags = ['Node', 'node', 'TypeScript', 'warren', 'İstanbul', 'x'];
  const out: WarrenMessage<'tweet.created'>[] = [];
  let r = seed * 7919;
  const next = (k: number) => (r = (r * 1103515245 + 12345) % 2147483648) % k;
  for (let i = 0; i < n; i++) {
    const a = next(3);
    const minute = next(180);
    const text = [
      `tweet ${i}`,
      ...Array.from({ length: next(4) }, () => `#${tags[next(tags.length)]}`),
      ...Array.from({ length: next(3) }, () => `@${['bob', 'Alice', 'carol_c'][next(3)]}`),
    ].join(' ');
    out.push(
      tweetCreated({
        authorId: authors[a],
        authorHandle: `${['alice', 'bob', 'carol'][a]}_${next(4)}`,
        text,
        createdAt: new Date(Date.UTC(2026, 10, 25, 8, minute)).toISOString(),
      }),
    );
  }
  return out;
}

describe('tallyTweets', () => {
  it('sums a batch in memory by the rules of the per-message handler', () => {
    const tally = tallyTweets([
      tweetCreated({ authorHandle: 'alice_a', text: '#Node @bob', createdAt: '2026-11-25T09:10:00.000Z' }),
      tweetCreated({ authorHandle: 'alice_b', text: '#node #node @Bob', createdAt: '2026-11-25T10:10:00.000Z' }),
      tweetCreated({ authorHandle: 'alice_c', text: 'none', createdAt: '2026-11-25T09:50:00.000Z' }),
    ]);
    expect([...tally.users.values()]).to.deep.equal([{ user_id: ALICE, handle: 'alice_b', tweet_count: 3, last_tweet_at: '2026-11-25T10:10:00.000Z' }]);
    expect([...tally.hashtags.values()]).to.deep.equal([{ tag: 'node', count: 2 }]);
    expect([...tally.userMentions.values()]).to.deep.equal([{ user_id: ALICE, handle: 'bob', count: 2 }]);
    expect([...tally.tweetsPerHour.values()]).to.deep.equal([
      { hour: '2026-11-25T09', count: 2 },
      { hour: '2026-11-25T10', count: 1 },
    ]);
  });

  it('throws PermanentError for a handle no column can hold', () => {
    expect(() => tallyTweets([tweetCreated({}), tweetCreated({ authorHandle: 'x'.repeat(31) })])).to.throw(PermanentError);
  });
});

describe('analyticsWorker', () => {
  it('consumes tweet.created from the analytics work queue', () => {
    expect(analyticsWorker.name).to.equal('analytics');
    expect(analyticsWorker.queue).to.equal('analytics.tweets');
    expect(analyticsWorker.bindings).to.deep.equal([{ exchange: 'tweets', routingKey: 'tweet.*' }]);
    expect(analyticsWorker.handles).to.deep.equal(['tweet.created']);
    expect(analyticsWorker.handleBatch, 'applies a batch set-based').to.be.a('function');
  });

  for (const backend of backends) {
    describe(`on ${backend.name}`, () => {
      let testDb: TestDatabase;
      let db: Knex;

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

      const handle = (message: WarrenMessage<'tweet.created'>) => db.transaction((tx) => analyticsWorker.handle(message, tx, ctx));
      const rows = (table: string, orderBy: string[]) => db(table).select('*').orderBy(orderBy);

      it("counts a tweet for its author and remembers the author's handle", async () => {
        await handle(tweetCreated({}));
        await handle(tweetCreated({ createdAt: '2026-11-25T10:00:00.000Z' }));
        expect(await rows('user_stats', ['user_id'])).to.deep.equal([
          { user_id: ALICE, handle: 'alice', tweet_count: 2, last_tweet_at: '2026-11-25T10:00:00.000Z' },
        ]);
      });

      it('counts case-folded hashtags once per tweet, per user and overall', async () => {
        await handle(tweetCreated({ text: '#Node and #node and #NODE, also #TypeScript' }));
        await handle(tweetCreated({ authorId: BOB, authorHandle: 'bob', text: 'me too #node' }));
        expect(await db('user_hashtags').where({ user_id: ALICE }).select('tag', 'count').orderBy('tag')).to.deep.equal([
          { tag: 'node', count: 1 },
          { tag: 'typescript', count: 1 },
        ]);
        expect(await db('user_hashtags').where({ user_id: BOB }).select('tag', 'count')).to.deep.equal([{ tag: 'node', count: 1 }]);
        expect(await rows('hashtags', ['tag'])).to.deep.equal([
          { tag: 'node', count: 2 },
          { tag: 'typescript', count: 1 },
        ]);
      });

      it('counts each mentioned handle once per tweet', async () => {
        await handle(tweetCreated({ text: '@Bob hi @bob, meet @carol' }));
        await handle(tweetCreated({ text: 'again @BOB' }));
        expect(await rows('user_mentions', ['handle'])).to.deep.equal([
          { user_id: ALICE, handle: 'bob', count: 2 },
          { user_id: ALICE, handle: 'carol', count: 1 },
        ]);
      });

      it('keeps the latest last_tweet_at and handle when an older tweet arrives later', async () => {
        await handle(tweetCreated({ authorHandle: 'alice_new', createdAt: '2026-11-25T11:00:00+02:00' }));
        await handle(tweetCreated({ authorHandle: 'alice_old', createdAt: '2026-11-25T08:59:59.999Z' }));
        const [stats] = await rows('user_stats', ['user_id']);
        // 11:00 at +02:00 is 09:00 UTC, later than 08:59:59.999 UTC although its text sorts lower.
        expect(stats).to.deep.equal({ user_id: ALICE, handle: 'alice_new', tweet_count: 2, last_tweet_at: '2026-11-25T09:00:00.000Z' });
      });

      it('buckets tweets by UTC hour', async () => {
        await handle(tweetCreated({ createdAt: '2026-11-25T23:30:00-02:00' }));
        await handle(tweetCreated({ createdAt: '2026-11-26T01:59:59.999Z' }));
        await handle(tweetCreated({ createdAt: '2026-11-26T02:00:00.000Z' }));
        expect(await rows('tweets_per_hour', ['hour'])).to.deep.equal([
          { hour: '2026-11-26T01', count: 2 },
          { hour: '2026-11-26T02', count: 1 },
        ]);
      });

      it('writes no hashtag or mention rows for a tweet without any', async () => {
        await handle(tweetCreated({ text: 'email a@b.example, issue #' }));
        expect(await rows('user_hashtags', ['tag'])).to.deep.equal([]);
        expect(await rows('hashtags', ['tag'])).to.deep.equal([]);
        expect(await rows('user_mentions', ['handle'])).to.deep.equal([]);
      });

      it('cuts a hashtag that lower-casing lengthened to the width of its column', async () => {
        // `İ` lower-cases to `i` + U+0307: 100 characters become 200.
        await handle(tweetCreated({ text: `#${'İ'.repeat(100)}` }));
        const [row] = await rows('hashtags', ['tag']);
        expect([...(row as { tag: string }).tag]).to.have.length(100);
      });

      it('writes only inside the transaction it is given', async () => {
        const err = await db
          .transaction(async (tx) => {
            await analyticsWorker.handle(tweetCreated({ text: '#gone @bob' }), tx, ctx);
            throw new Error('abort');
          })
          .catch((e: unknown) => e);
        expect(err).to.have.property('message', 'abort');
        for (const table of ['user_stats', 'user_hashtags', 'user_mentions', 'hashtags', 'tweets_per_hour']) {
          expect(await db(table).select('*'), table).to.deep.equal([]);
        }
      });

      it('parks a tweet whose author handle can never be stored', async () => {
        const err = await handle(tweetCreated({ authorHandle: 'x'.repeat(31) })).catch((e: unknown) => e);
        expect(err).to.be.instanceOf(PermanentError);
      });

      describe('handleBatch', () => {
        const handleBatch = (messages: WarrenMessage<'tweet.created'>[]) => db.transaction((tx) => analyticsWorker.handleBatch!(messages, tx, ctx));
        /** Every row of the read model, in key order: what the two forms must agree on. */
        const snapshot = async () => {
          const all: Record<string, unknown[]> = {};
          for (const [table, key] of Object.entries(KEYS)) all[table] = await rows(table, key);
          return all;
        };
        const reset = async () => {
          for (const table of TABLES) await db(table).delete();
        };

        it('has the effect of the per-message handler on the same tweets, whether they start from nothing or from existing rows', async () => {
          const earlier = corpus(40, 1);
          const later = corpus(160, 2);
          for (const m of [...earlier, ...later]) await handle(m);
          const oneByOne = await snapshot();
          await reset();
          // The earlier tweets as one batch, the later ones in batches of unequal size on top of them.
          await handleBatch(earlier);
          for (const size of [1, 7, 50, 102]) await handleBatch(later.splice(0, size));
          expect(later).to.have.length(0);
          expect(await snapshot()).to.deep.equal(oneByOne);
          expect(oneByOne.user_stats, 'the corpus touches several users').to.have.length(3);
        });

        it('keeps the newest last_tweet_at and its handle inside a batch and against the stored row', async () => {
          await handle(tweetCreated({ authorHandle: 'alice_stored', createdAt: '2026-11-25T10:00:00.000Z' }));
          await handleBatch([
            tweetCreated({ authorHandle: 'alice_older', createdAt: '2026-11-25T09:00:00.000Z' }),
            tweetCreated({ authorHandle: 'alice_newer', createdAt: '2026-11-25T12:00:00+02:00' }),
            tweetCreated({ authorHandle: 'alice_tied', createdAt: '2026-11-25T10:00:00.000Z' }),
          ]);
          // 12:00 at +02:00 is 10:00 UTC: the three ties; the last one given wins, as one after another.
          expect(await rows('user_stats', ['user_id'])).to.deep.equal([
            { user_id: ALICE, handle: 'alice_tied', tweet_count: 4, last_tweet_at: '2026-11-25T10:00:00.000Z' },
          ]);
          await handleBatch([tweetCreated({ authorHandle: 'alice_late', createdAt: '2026-11-25T08:00:00.000Z' })]);
          expect(await rows('user_stats', ['user_id'])).to.deep.equal([
            { user_id: ALICE, handle: 'alice_tied', tweet_count: 5, last_tweet_at: '2026-11-25T10:00:00.000Z' },
          ]);
        });

        it('sums case-folded, cut hashtags and mentions over the batch, once per tweet', async () => {
          await handleBatch([
            tweetCreated({ text: `#Node #node @Bob @bob #${'İ'.repeat(100)}` }),
            tweetCreated({ text: '#NODE again, @BOB' }),
            tweetCreated({ authorId: BOB, authorHandle: 'bob', text: '#node @alice' }),
          ]);
          expect(await db('hashtags').where({ tag: 'node' }).first()).to.deep.equal({ tag: 'node', count: 3 });
          expect(await db('user_hashtags').where({ user_id: ALICE, tag: 'node' }).first()).to.deep.equal({ user_id: ALICE, tag: 'node', count: 2 });
          const [long] = await db('hashtags').whereNot({ tag: 'node' }).select('tag');
          expect([...(long as { tag: string }).tag]).to.have.length(100);
          expect(await rows('user_mentions', ['user_id', 'handle'])).to.deep.equal(
            [
              { user_id: ALICE, handle: 'bob', count: 2 },
              { user_id: BOB, handle: 'alice', count: 1 },
            ].sort((a, b) => (a.user_id < b.user_id ? -1 : 1)),
          );
        });

        it('stores a batch whose rows exceed one statement (over 1,000 hashtags)', async () => {
          const many = Array.from({ length: 12 }, (_, i) => tweetCreated({ text: Array.from({ length: 90 }, (_, j) => `#t${i}x${j}`).join(' ') }));
          await handleBatch(many);
          const [{ n }] = (await db('hashtags').count({ n: '*' })) as { n: number | string }[];
          expect(Number(n)).to.equal(12 * 90);
        });

        it('throws PermanentError for a batch holding a handle no column can hold, and writes nothing', async () => {
          const err = await handleBatch([tweetCreated({}), tweetCreated({ authorHandle: 'bad handle' })]).catch((e: unknown) => e);
          expect(err).to.be.instanceOf(PermanentError);
          for (const table of TABLES) expect(await db(table).select('*'), table).to.deep.equal([]);
        });
      });
    });
  }
});
