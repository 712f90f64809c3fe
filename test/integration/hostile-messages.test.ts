import crypto from 'node:crypto';
import type { GetMessage, Options } from 'amqplib';
import { expect } from 'chai';
import { headerString } from '../../src/domain/messages';
import { Int64Header, installInt64Headers } from '../../src/broker/int64';
import { replayParked } from '../../src/ops/dlq';
import type { QueueInfo } from '../../src/topology/management';
import { MAX_ERROR_BYTES, MAX_WARREN_HEADER_BYTES, warrenHeaderBytes } from '../../src/consume/retry';
import { peek, queueStats, rawPublish } from '../support/amqp';
import { nestedTable, rawFramePublish, type FieldValue } from '../support/rawAmqp';
import { freePort, TestSystem, TEST_DB, waitFor, type WarrenProcess } from '../support/system';

// The parked copies are read back exactly as Warren reads them: a 64-bit integer header in full.
installInt64Headers();

/**
 * What a foreign or broken publisher can put on Warren's exchanges: each
 * message is parked at once in its queue's DLQ with a reason that names it
 * and headers that stay small, and the workers keep consuming.
 */
type Exchange = 'tweets' | 'user.events';

interface Draft {
  /** The body as an object (serialised at publish) or as bytes. */
  body: object | Buffer | string;
  props: Options.Publish & { headers: Record<string, unknown> };
  /** Headers amqplib cannot encode, sent with frames the test writes itself (test/support/rawAmqp.ts). */
  raw?: Record<string, FieldValue>;
}

interface HostileCase {
  name: string;
  /** Spoils one thing of an otherwise valid message. */
  spoil: (draft: Draft, exchange: Exchange) => void;
  reason: RegExp;
  /** What else its parked copy must show. */
  check?: (headers: Record<string, unknown>, exchange: Exchange) => void;
}

const QUEUE: Record<Exchange, string> = { tweets: 'analytics.tweets', 'user.events': 'notifications.user-events' };
const HUGE = 100_000;

const ROUTING_KEY: Record<Exchange, string> = { tweets: 'tweet.created', 'user.events': '' };

const cases: HostileCase[] = [
  // First: every ordinary bad message below is parked after it, on the same publishing channel.
  {
    name: 'a header nested 3,000 levels deep',
    spoil: (d) => (d.raw = { deep: nestedTable(3000) }),
    reason: /^PermanentError: header "deep" is nested more than 16 levels deep$/,
    check: (h) => {
      expect(h).to.not.have.property('deep');
      expect(headerString(h['x-warren-headers-dropped'])).to.equal('header "deep" is nested more than 16 levels deep');
      expect(headerString(h['x-schema-version'])).to.equal('1.0');
    },
  },
  {
    name: 'forged x-warren-* attempts, origin and first failure',
    spoil: (d) => {
      delete d.props.contentType;
      Object.assign(d.props.headers, {
        'x-warren-attempts': 7,
        'x-warren-original-exchange': 'evil',
        'x-warren-original-routing-key': 'evil',
        'x-warren-first-failure': '2020-01-01T00:00:00.000Z',
        'x-warren-error-kind': 'exhausted',
      });
    },
    reason: /unsupported content type ""/,
    check: (h, exchange) => {
      expect(h['x-warren-attempts']).to.equal(1);
      expect(headerString(h['x-warren-original-routing-key'])).to.equal(ROUTING_KEY[exchange]);
      expect(Date.parse(headerString(h['x-warren-first-failure']) ?? '')).to.be.above(Date.now() - 600_000);
    },
  },
  {
    name: 'a 64-bit integer header (2^62+1)',
    spoil: (d) => {
      delete d.props.contentType;
      d.raw = { big: 2n ** 62n + 1n, negative: -(2n ** 62n) - 1n, small: 42n };
    },
    reason: /unsupported content type ""/,
    check: (h) => {
      expect(h.big).to.deep.equal(new Int64Header(2n ** 62n + 1n));
      expect(h.negative).to.deep.equal(new Int64Header(-(2n ** 62n) - 1n));
      expect(h.small).to.equal(42);
    },
  },
  { name: 'no content type', spoil: (d) => delete d.props.contentType, reason: /unsupported content type ""/ },
  { name: 'a wrong content type', spoil: (d) => (d.props.contentType = 'text/plain'), reason: /unsupported content type "text\/plain"/ },
  { name: 'a body that is not JSON', spoil: (d) => (d.body = '{"tweetId": "'), reason: /body is not valid JSON/ },
  { name: 'JSON of the wrong schema', spoil: (d) => (d.body = { hello: 'world' }), reason: /body does not match (tweet\.created|user\.updated)/ },
  { name: 'an unknown type', spoil: (d) => (d.props.type = 'tweet.deleted'), reason: /unknown message type "tweet\.deleted"/ },
  { name: 'a higher major x-schema-version', spoil: (d) => (d.props.headers['x-schema-version'] = '2.0'), reason: /x-schema-version 2\.0 is newer/ },
  { name: 'a 2 MB body', spoil: (d) => Object.assign(d.body, { padding: 'x'.repeat(2 * 1024 * 1024) }), reason: /body of \d+ bytes is larger than/ },
  { name: 'no message_id', spoil: (d) => delete d.props.messageId, reason: /missing message_id/ },
  { name: 'a message_id of 101 characters', spoil: (d) => (d.props.messageId = 'm'.repeat(101)), reason: /message_id longer than 100 characters/ },
  { name: 'gzip content encoding', spoil: (d) => (d.props.contentEncoding = 'gzip'), reason: /unsupported content encoding "gzip"/ },
  {
    name: 'forged 20 KB x-warren-* headers',
    spoil: (d) => {
      delete d.props.contentType;
      Object.assign(d.props.headers, { 'x-warren-original-queue': 'q'.repeat(20_000), 'x-warren-first-failure': 'f'.repeat(20_000) });
    },
    reason: /unsupported content type ""/,
  },
  {
    name: 'a 100 KB value or field name in the error',
    // tweet.created: a handle no column can hold; user.updated: a 100 KB field name in `changes`.
    spoil: (d, exchange) =>
      Object.assign(d.body, exchange === 'tweets' ? { authorHandle: 'h'.repeat(HUGE) } : { changes: { ['f'.repeat(HUGE)]: 'not a change' } }),
    // Cut to 1 KiB, so what the reason names is the start of the huge value.
    reason: /^PermanentError: (authorHandle "h{500,}|body does not match user\.updated: changes\.f{500,})\.\.\.$/,
  },
];

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const bytesOf = (body: Draft['body']) => (Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)));

describe(`hostile messages at the workers (${TEST_DB})`, function () {
  this.timeout(120_000);
  const sys = new TestSystem();
  const workers: Partial<Record<Exchange, WarrenProcess>> = {};
  let user: { id: string; token: string; handle: string };
  const sent = new Map<string, { exchange: Exchange; content: Buffer }>();
  const parked = new Map<string, GetMessage>();
  /** Every parked copy's case, duplicates included. */
  const parkedTags: string[] = [];
  const healthPorts: Partial<Record<Exchange, number>> = {};

  /** A valid message of each exchange, about `user`; correlation_id says which case it is. */
  function validDraft(exchange: Exchange, tag: string): Draft {
    const now = new Date().toISOString();
    const props = {
      contentType: 'application/json',
      messageId: crypto.randomUUID(),
      correlationId: tag,
      appId: 'hostile-test',
      timestamp: Math.floor(Date.now() / 1000),
      headers: { 'x-schema-version': '1.0' },
    };
    return exchange === 'tweets'
      ? {
          body: { tweetId: crypto.randomUUID(), authorId: user.id, authorHandle: user.handle, text: 'probe #hostile', createdAt: now },
          props: { ...props, type: 'tweet.created' },
        }
      : { body: { userId: user.id, changes: { displayName: { from: 'a', to: 'b' } }, updatedAt: now }, props: { ...props, type: 'user.updated' } };
  }

  async function publish(exchange: Exchange, draft: Draft): Promise<Buffer> {
    const content = bytesOf(draft.body);
    if (draft.raw) {
      const { contentType, contentEncoding, messageId, correlationId, appId, timestamp, type, headers } = draft.props;
      await rawFramePublish(sys.amqpUrl, exchange, ROUTING_KEY[exchange], content, {
        contentType,
        contentEncoding,
        messageId,
        correlationId,
        appId,
        timestamp,
        type,
        headers: { ...(headers as Record<string, FieldValue>), ...draft.raw },
      });
      return content;
    }
    await rawPublish(sys.amqpUrl, exchange, exchange === 'tweets' ? 'tweet.created' : '', content, draft.props);
    return content;
  }

  const depth = async (queue: string) => (await queueStats(sys.amqpUrl, queue)).messages;

  before(async () => {
    await sys.setUp();
    await sys.startApi();
    healthPorts.tweets = await freePort();
    healthPorts['user.events'] = await freePort();
    workers.tweets = await sys.startWorker('analytics', { WARREN_WORKER_HEALTH_PORT: String(healthPorts.tweets) });
    workers['user.events'] = await sys.startWorker('notifications', { WARREN_WORKER_HEALTH_PORT: String(healthPorts['user.events']) });
    const handle = `hostile_${Date.now().toString(36).slice(-5)}`;
    user = { ...(await sys.createUser(handle)), handle };

    for (const exchange of ['tweets', 'user.events'] as const) {
      for (const c of cases) {
        const tag = `${exchange}: ${c.name}`;
        const draft = validDraft(exchange, tag);
        c.spoil(draft, exchange);
        sent.set(tag, { exchange, content: await publish(exchange, draft) });
      }
      const dlq = `${QUEUE[exchange]}.dlq`;
      await waitFor(`${cases.length} parked in ${dlq}`, async () => (await depth(dlq)) >= cases.length, 30_000).catch((err) => {
        throw new Error(`${(err as Error).message}\n${workers[exchange]?.tail(10).slice(-3000)}`);
      });
      for (const msg of await peek(sys.amqpUrl, dlq, cases.length + 5)) {
        parked.set(String(msg.properties.correlationId), msg);
        parkedTags.push(String(msg.properties.correlationId));
      }
    }
  });

  after(async () => {
    await sys.tearDown();
  });

  for (const exchange of ['tweets', 'user.events'] as const) {
    describe(`published to ${exchange}`, () => {
      for (const c of cases) {
        const tag = `${exchange}: ${c.name}`;
        it(`${c.name}: parked in ${QUEUE[exchange]}.dlq as permanent, saying why`, () => {
          const msg = parked.get(tag);
          expect(msg, `no parked message for ${tag}; parked: ${[...parked.keys()].join(', ')}`).to.not.equal(undefined);
          const headers = msg!.properties.headers ?? {};
          const error = headerString(headers['x-warren-error']) ?? '';
          expect(error).to.match(c.reason);
          expect(headerString(headers['x-warren-error-kind'])).to.equal('permanent');
          expect(headerString(headers['x-warren-original-queue'])).to.equal(QUEUE[exchange]);
          expect(headerString(headers['x-warren-original-exchange'])).to.equal(exchange);
          expect(Buffer.byteLength(error)).to.be.at.most(MAX_ERROR_BYTES);
          expect(warrenHeaderBytes(headers)).to.be.below(MAX_WARREN_HEADER_BYTES);
          // The body is kept byte for byte, for an operator to inspect and replay.
          expect(sha(msg!.content)).to.equal(sha(sent.get(tag)!.content));
          c.check?.(headers, exchange);
        });
      }

      it('parked nothing else, and each of them once', async () => {
        expect(await depth(`${QUEUE[exchange]}.dlq`)).to.equal(cases.length);
        const mine = parkedTags.filter((t) => t.startsWith(`${exchange}: `));
        expect(mine).to.have.length(cases.length);
        expect(new Set(mine).size).to.equal(cases.length);
      });
    });
  }

  describe('afterwards', () => {
    it('acks and ignores user.created at the notifications worker, parking nothing', async () => {
      const draft = validDraft('user.events', 'user.created ignored');
      draft.body = { userId: crypto.randomUUID(), handle: 'someone', displayName: 'Someone', createdAt: new Date().toISOString() };
      draft.props.type = 'user.created';
      await publish('user.events', draft);
      // The management figures lag: wait for a snapshot that has seen every message delivered
      // from the queue (the API's user.created, the hostile ones, this one) and all of them acked.
      const entered = cases.length + 2;
      let last: unknown;
      await waitFor(
        'every message of notifications.user-events to be acked',
        async () => {
          // Counted on the worker's long-lived channel (a short-lived publisher's channel may close before reporting).
          const q = (await sys.management.getQueue(sys.vhost, QUEUE['user.events'])) as
            (QueueInfo & { message_stats?: { deliver_get?: number; ack?: number } }) | undefined;
          const stats = q?.message_stats;
          last = q && { messages: q.messages, unacked: q.messages_unacknowledged, delivered: stats?.deliver_get, acked: stats?.ack };
          return !!stats && (stats.deliver_get ?? 0) >= entered && stats.ack === stats.deliver_get && q.messages === 0 && q.messages_unacknowledged === 0;
        },
        30_000,
      ).catch((err) => {
        throw new Error(`${(err as Error).message}; last seen ${JSON.stringify(last)}`);
      });
      // Ignored, so neither parked nor retried.
      expect(await depth('notifications.user-events.dlq')).to.equal(cases.length);
      expect(await depth('warren.delay.5s')).to.equal(0);
    });

    it('still counts a valid tweet, and none of the hostile ones', async () => {
      await publish('tweets', validDraft('tweets', 'a valid tweet'));
      const stats = await waitFor(
        'the valid tweet to be counted',
        async () => {
          const res = await sys.request('GET', `/analytics/users/${user.id}`);
          return res.json?.tweetCount > 0 ? res.json : undefined;
        },
        30_000,
      );
      await new Promise((r) => setTimeout(r, 500));
      expect(stats.tweetCount).to.equal(1);
      expect((await sys.request('GET', `/analytics/users/${user.id}`)).json.tweetCount).to.equal(1);
    });

    it('still applies a valid user.updated, and none of the hostile ones', async () => {
      await publish('user.events', validDraft('user.events', 'a valid update'));
      const items = await waitFor(
        'the notification',
        async () => {
          const res = await sys.request('GET', `/users/${user.id}/notifications`, { token: user.token });
          return res.json?.items?.length > 0 ? res.json.items : undefined;
        },
        30_000,
      );
      await new Promise((r) => setTimeout(r, 500));
      expect(items).to.have.length(1);
      expect((await sys.request('GET', `/users/${user.id}/notifications`, { token: user.token })).json.items).to.have.length(1);
    });

    it('leaves both workers ready, their DLQs holding one copy of each parked message', async () => {
      for (const exchange of ['tweets', 'user.events'] as const) {
        const res = await waitFor(
          `the ${exchange} worker's /readyz to answer 200`,
          async () => {
            const r = await fetch(`http://127.0.0.1:${healthPorts[exchange]}/readyz`);
            return r.status === 200 ? r : undefined;
          },
          15_000,
        ).catch(async (err) => {
          const r = await fetch(`http://127.0.0.1:${healthPorts[exchange]}/readyz`);
          throw new Error(`${(err as Error).message}: ${r.status} ${await r.text()}`);
        });
        expect(res.status).to.equal(200);
        // A park that looked timed out would have been published again by now.
        expect(await depth(`${QUEUE[exchange]}.dlq`)).to.equal(cases.length);
      }
    });

    it('keeps both workers alive and consuming', async () => {
      for (const exchange of ['tweets', 'user.events'] as const) {
        expect(workers[exchange]!.running, workers[exchange]!.tail(10).slice(-3000)).to.equal(true);
        expect(await sys.consumers(QUEUE[exchange])).to.be.at.least(1);
        expect(await depth(QUEUE[exchange])).to.equal(0);
      }
    });

    it('warren dlq replay gets past a message parked with a header nested 3,000 levels deep, and replays it without that header', async () => {
      const dlq = `${QUEUE.tweets}.dlq`;
      // As a broker parks it (a crash loop) or an older Warren did: the deep header still on it.
      const draft = validDraft('tweets', 'parked with a deep header');
      const id = String(draft.props.messageId);
      await rawFramePublish(sys.amqpUrl, 'warren.dlx', QUEUE.tweets, bytesOf(draft.body), {
        contentType: 'application/json',
        messageId: id,
        type: 'tweet.created',
        correlationId: 'parked with a deep header',
        headers: { 'x-schema-version': '1.0', 'x-warren-original-queue': QUEUE.tweets, 'x-warren-error': 'parked before', deep: nestedTable(3000) },
      });
      expect(await depth(dlq)).to.equal(cases.length + 1);
      // Nothing selected: every message, the deep one too, is copied back to the DLQ.
      const none = await replayParked(sys.amqpUrl, QUEUE.tweets, { ids: ['nothing-has-this-id'] });
      expect(none).to.include({ replayed: 0, skipped: cases.length + 1 });
      const copy = (await peek(sys.amqpUrl, dlq, cases.length + 5)).find((m) => m.properties.messageId === id);
      expect(copy?.properties.headers).to.not.have.property('deep');
      expect(headerString(copy?.properties.headers?.['x-warren-headers-dropped'])).to.equal('header "deep" is nested more than 16 levels deep');
      // Its body is valid: replayed without the header, it is applied.
      const replay = await replayParked(sys.amqpUrl, QUEUE.tweets, { ids: [id] });
      expect(replay.replayed).to.equal(1);
      await waitFor('the replayed tweet to be counted', async () => (await sys.request('GET', `/analytics/users/${user.id}`)).json?.tweetCount === 2, 30_000);
      expect(await depth(dlq)).to.equal(cases.length);
    });
  });
});
