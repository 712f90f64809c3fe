/**
 * @file `GET /asyncapi.json`: an AsyncAPI 3.0 document that @asyncapi/parser
 * accepts, generated from every message schema and from the exchanges and
 * queues of the definitions file (so a new message type or queue is in it
 * without anyone writing it down).
 */
import { Parser } from '@asyncapi/parser';
import { expect } from 'chai';
import { z } from 'zod';
import { routes } from '../../../src/api/asyncapi';
import { vhostOf } from '../../../src/config';
import { PARK_KINDS, WARREN_HEADERS } from '../../../src/consume/retry';
import { LIVE_NOTIFICATION_TYPE } from '../../../src/domain/liveNotification';
import { APP_ID, messageRoutes, messageSchemas, type MessageType } from '../../../src/domain/messages';
import { loadDefinitions, workQueues, type Definitions } from '../../../src/topology/definitions';
import { startApi, type ApiHarness } from './harness';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document is plain JSON; the tests walk it by key
type Json = any;

const types = Object.keys(messageSchemas) as MessageType[];

async function errorsOf(doc: Json): Promise<string[]> {
  const diagnostics = await new Parser().validate(doc);
  // Severity 0 is an error, 1 a warning (2 and 3 are information and hints, such as "3.1.0 exists").
  return diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.code} at ${d.path.join('.')}: ${d.message}`);
}

const messageNames = (channel: Json): string[] => Object.keys(channel.messages);

describe('api: GET /asyncapi.json', () => {
  let api: ApiHarness;
  let doc: Json;
  let defs: Definitions;
  before(async () => {
    api = await startApi();
    defs = loadDefinitions(api.config.amqp.definitionsFile);
    const res = await api.request('GET', '/asyncapi.json');
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^application\/json/);
    doc = res.body;
  });
  after(async () => {
    await api.close();
  });

  it('is a valid AsyncAPI 3.0 document, as @asyncapi/parser validates it, and the parser does refuse a broken one', async function () {
    this.timeout(20_000);
    expect(doc.asyncapi).to.equal('3.0.0');
    expect(await errorsOf(doc)).to.deep.equal([]);
    const wrongPayload = structuredClone(doc);
    wrongPayload.components.messages['tweet.created'].payload.type = 'tweet';
    expect(await errorsOf(wrongPayload)).to.not.deep.equal([]);
    const danglingMessage = structuredClone(doc);
    danglingMessage.operations['consume.analytics.tweets'].messages.push({ $ref: '#/channels/queue.analytics.tweets/messages/user.created' });
    expect(await errorsOf(danglingMessage)).to.not.deep.equal([]);
  });

  it('has one channel per exchange and per queue of the definitions file, with its AMQP binding in the vhost of amqp.url', () => {
    const vhost = vhostOf(api.config.amqp.url);
    const channels = Object.values(doc.channels) as Json[];
    const exchanges = channels.filter((c) => c.bindings.amqp.is === 'routingKey');
    const queues = channels.filter((c) => c.bindings.amqp.is === 'queue');
    expect(exchanges.map((c) => c.address).sort()).to.deep.equal(defs.exchanges.map((e) => e.name).sort());
    expect(queues.map((c) => c.address).sort()).to.deep.equal(defs.queues.map((q) => q.name).sort());
    expect(channels).to.have.length(defs.exchanges.length + defs.queues.length);
    for (const e of defs.exchanges)
      expect(doc.channels[`exchange.${e.name}`].bindings.amqp.exchange).to.include({ name: e.name, type: e.type, durable: true, vhost });
    for (const q of defs.queues)
      expect(doc.channels[`queue.${q.name}`].bindings.amqp.queue).to.include({ name: q.name, durable: true, exclusive: false, vhost });
    expect(doc.servers.broker).to.include({ protocol: 'amqp', pathname: `/${vhost}` });
  });

  it('has every message type with the very schema that validates it as its payload, on its exchange and the queues its bindings reach', () => {
    expect(types.length).to.be.greaterThan(3);
    for (const type of types) {
      const message = doc.components.messages[type];
      expect(message, type).to.not.equal(undefined);
      const { $schema: _, ...expected } = z.toJSONSchema(messageSchemas[type], { target: 'draft-7', io: 'input', unrepresentable: 'any' });
      expect(message.payload, type).to.deep.equal(expected);
      expect(message.bindings.amqp.messageType).to.equal(type);
      const { exchange, routingKey } = messageRoutes[type];
      expect(messageNames(doc.channels[`exchange.${exchange}`]), exchange).to.include(type);
      // Where the broker would route it: each binding from its exchange that matches its routing key.
      const kind = defs.exchanges.find((e) => e.name === exchange)!.type;
      const reached = defs.bindings.filter((b) => b.source === exchange && routes(kind, b.routing_key, routingKey)).map((b) => b.destination);
      expect(reached, `${type} reaches a queue`).to.not.deep.equal([]);
      for (const queue of reached) {
        expect(messageNames(doc.channels[`queue.${queue}`]), queue).to.include.members([type, `${type}.retry`]);
        expect(messageNames(doc.channels[`queue.${queue}.dlq`]), `${queue}.dlq`).to.include(`${type}.parked`);
      }
    }
    expect(messageNames(doc.channels['queue.analytics.tweets'])).to.deep.equal(['tweet.created', 'tweet.created.retry']);
    expect(messageNames(doc.channels['exchange.notifications.live'])).to.deep.equal([LIVE_NOTIFICATION_TYPE]);
  });

  it("gives each message its AMQP properties and headers, and a parked copy Warren's x-warren-* headers", () => {
    for (const type of types) {
      const event = doc.components.messages[type];
      expect(event.headers.required).to.deep.equal(['x-schema-version', 'traceparent']);
      // Carried when the request had one, so optional.
      expect(event.headers.properties.tracestate).to.include({ type: 'string', maxLength: 512 });
      expect(event.headers.properties['x-schema-version'].pattern).to.equal('^[0-9]+\\.[0-9]+$');
      const properties = event['x-amqp-properties'];
      expect(properties).to.include.keys('message_id', 'type', 'correlation_id', 'timestamp', 'app_id', 'content_type', 'delivery_mode');
      expect(properties.type).to.deep.equal({ const: type });
      expect(properties.app_id).to.deep.equal({ const: APP_ID });
      expect(properties.delivery_mode.const).to.equal(2);
      const parked = doc.components.messages[`${type}.parked`];
      expect(parked.headers.properties).to.include.keys(...Object.values(WARREN_HEADERS), 'x-death', 'x-schema-version', 'traceparent');
      expect(parked.headers.properties[WARREN_HEADERS.kind].enum).to.deep.equal([...PARK_KINDS]);
      expect(parked.payload).to.deep.equal(event.payload);
      const retry = doc.components.messages[`${type}.retry`];
      expect(retry.headers.required).to.include.members([WARREN_HEADERS.attempts, WARREN_HEADERS.originalQueue, 'x-schema-version']);
      expect(retry.headers.properties).to.not.have.property(WARREN_HEADERS.kind);
    }
  });

  it('sends events durably and consumes each work queue with acks', () => {
    for (const exchange of new Set(types.map((t) => messageRoutes[t].exchange))) {
      expect(doc.operations[`publish.${exchange}`]).to.deep.include({
        action: 'send',
        bindings: { amqp: { deliveryMode: 2, mandatory: true, timestamp: true, bindingVersion: '0.3.0' } },
      });
    }
    for (const queue of workQueues(defs)) {
      const op = doc.operations[`consume.${queue}`];
      expect(op.action).to.equal('receive');
      expect(op.channel).to.deep.equal({ $ref: `#/channels/queue.${queue}` });
      expect(op.messages.length).to.equal(messageNames(doc.channels[`queue.${queue}`]).length);
    }
    expect(doc.operations['park.warren.dlx'].action).to.equal('send');
  });

  it('routes as RabbitMQ does: topic words and wildcards, fanout, direct', () => {
    expect(routes('topic', 'tweet.*', 'tweet.created')).to.equal(true);
    expect(routes('topic', 'tweet.*', 'tweet.created.twice')).to.equal(false);
    expect(routes('topic', '#', 'a.b.c')).to.equal(true);
    expect(routes('topic', 'a.#.c', 'a.c')).to.equal(true);
    expect(routes('topic', 'a.#', 'b.a')).to.equal(false);
    expect(routes('fanout', 'whatever', 'user.created')).to.equal(true);
    expect(routes('direct', 'analytics.tweets', 'analytics.tweets')).to.equal(true);
    expect(routes('direct', 'analytics.tweets', 'analytics')).to.equal(false);
  });
});
