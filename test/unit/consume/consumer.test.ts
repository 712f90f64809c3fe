import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import type { ConsumeMessage } from 'amqplib';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { QueueConsumer } from '../../../src/consume/consumer';
import type { WorkerDefinition } from '../../../src/consume/handler';
import { PublishError, type ConfirmPublisher, type PublishRequest } from '../../../src/broker/publisher';
import { createLogger } from '../../../src/log';
import { fakeConnection } from '../../support/fakeAmqp';
import { encodeTable, nestedTable } from '../../support/rawAmqp';

const codec = createRequire(require.resolve('amqplib'))('./lib/codec.js') as { decodeFields(slice: Buffer): Record<string, unknown> };

const worker: WorkerDefinition = {
  name: 'analytics',
  queue: 'analytics.tweets',
  bindings: [],
  handles: ['tweet.created'],
  handle: async () => undefined,
};

function tweet(headers: Record<string, unknown>, opts: { exchange?: string; contentType?: string } = {}): ConsumeMessage {
  const body = { tweetId: crypto.randomUUID(), authorId: crypto.randomUUID(), authorHandle: 'h', text: 'hi', createdAt: new Date().toISOString() };
  return {
    fields: { exchange: opts.exchange ?? 'tweets', routingKey: 'tweet.created', deliveryTag: 1, redelivered: false, consumerTag: 'c' },
    properties: { messageId: 'm-1', type: 'tweet.created', contentType: opts.contentType ?? 'application/json', headers },
    content: Buffer.from(JSON.stringify(body)),
  } as unknown as ConsumeMessage;
}

/** A consumer that never subscribes (its connection is down): `process` is driven by hand, with no channel to ack on. */
function consumer(publish: (req: PublishRequest) => Promise<void>) {
  const { connection, setConnected } = fakeConnection();
  setConnected(false);
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('test', 'info', { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  const publisher = { publish, isReady: () => true } as unknown as ConfirmPublisher;
  const c = new QueueConsumer({ connection, publisher, db: {} as Knex, worker, prefetch: 1, handlerTimeoutMs: 1000, maxAttempts: 5, steps: [], log });
  return { c, lines };
}

describe('QueueConsumer parking', () => {
  it('names the message in the log line of a retry or park the broker refused', async () => {
    let calls = 0;
    const { c, lines } = consumer(async () => {
      if (calls++ === 0) throw new PublishError('nacked', 'queue full');
    });
    try {
      expect(await c.process(tweet({}, { contentType: 'text/plain' }))).to.equal('parked');
      const refused = lines.find((l) => String(l.msg).startsWith('retry/park publish failed'));
      expect(refused, JSON.stringify(lines)).to.include({ messageId: 'm-1', exchange: 'warren.dlx', routingKey: 'analytics.tweets' });
    } finally {
      await c.stop(100);
    }
  });

  it("sends a copy amqplib could not encode again with only Warren's headers, once", async () => {
    const sent: PublishRequest[] = [];
    const { c } = consumer(async (req) => {
      sent.push(req);
      if (sent.length === 1) throw new PublishError('unencodable', 'Unknown type to encode: symbol');
    });
    try {
      expect(await c.process(tweet({ traceparent: 't', odd: 'x' }, { contentType: 'text/plain' }))).to.equal('parked');
      expect(sent).to.have.length(2);
      const h = sent[1]!.properties.headers as Record<string, unknown>;
      expect(Object.keys(h).every((k) => k.startsWith('x-warren-'))).to.equal(true);
      expect(h['x-warren-headers-dropped']).to.match(/could not be encoded \(publish unencodable: Unknown type to encode: symbol\)/);
      expect(h['x-warren-error-kind']).to.equal('permanent');
    } finally {
      await c.stop(100);
    }
  });

  it("ignores forged x-warren-* headers on a first delivery, and trusts Warren's on a retry", async () => {
    const sent: PublishRequest[] = [];
    const { c } = consumer(async (req) => void sent.push(req));
    const forged = {
      'x-warren-attempts': 4,
      'x-warren-original-exchange': 'evil',
      'x-warren-original-routing-key': 'evil',
      'x-warren-first-failure': '2020-01-01T00:00:00.000Z',
    };
    try {
      await c.process(tweet(forged, { contentType: 'text/plain' }));
      await c.process(tweet(forged, { contentType: 'text/plain', exchange: 'warren.return' }));
      const [first, retried] = sent.map((r) => r.properties.headers as Record<string, unknown>);
      expect(first).to.include({ 'x-warren-attempts': 1, 'x-warren-original-exchange': 'tweets', 'x-warren-original-routing-key': 'tweet.created' });
      expect(first!['x-warren-first-failure']).to.not.equal(forged['x-warren-first-failure']);
      expect(retried).to.include({ 'x-warren-attempts': 5, 'x-warren-original-exchange': 'evil', 'x-warren-first-failure': forged['x-warren-first-failure'] });
    } finally {
      await c.stop(100);
    }
  });

  it('parks a valid message whose header is nested 3,000 levels deep as permanent, naming the header, without it', async () => {
    const sent: PublishRequest[] = [];
    const { c } = consumer(async (req) => void sent.push(req));
    const headers = codec.decodeFields(
      encodeTable({ deep: nestedTable(3000), traceparent: '00-0123456789abcdef0123456789abcdef-0123456789abcdef-01' }).subarray(4),
    );
    try {
      expect(await c.process(tweet(headers))).to.equal('parked');
      expect(sent).to.have.length(1);
      const h = sent[0]!.properties.headers as Record<string, unknown>;
      expect(sent[0]!.exchange).to.equal('warren.dlx');
      expect(h).to.not.have.property('deep');
      expect(h).to.have.property('traceparent');
      expect(h).to.include({ 'x-warren-error-kind': 'permanent', 'x-warren-headers-dropped': 'header "deep" is nested more than 16 levels deep' });
      expect(h['x-warren-error']).to.equal('PermanentError: header "deep" is nested more than 16 levels deep');
    } finally {
      await c.stop(100);
    }
  });
});
