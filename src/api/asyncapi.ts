/**
 * @file The AsyncAPI 3.0 document of Warren's messages, served at
 * `GET /asyncapi.json` for the teams that subscribe to them.
 *
 * Generated, never written by hand: the channels are the exchanges and
 * queues of the definitions file, each message's payload is the zod schema
 * that validates it when it is published and when it is consumed
 * (src/domain/messages.ts, every type of `messageSchemas`), and the headers a
 * retry or a park adds are those of src/consume/retry.ts. Which message
 * reaches which queue is worked out from the bindings, as the broker routes.
 * test/unit/api/asyncapi.test.ts checks the document with @asyncapi/parser.
 */
import { z } from 'zod';
import { MAX_TRACESTATE_LENGTH } from '../observability/traceContext';
import { LIVE_EXCHANGE } from '../broker/live';
import { MAX_ERROR_BYTES, PARK_KINDS, WARREN_HEADERS } from '../consume/retry';
import { LIVE_NOTIFICATION_TYPE, liveNotificationSchema } from '../domain/liveNotification';
import { APP_ID, MAX_MESSAGE_ID_LENGTH, messageRoutes, messageSchemas, SCHEMA_VERSION, type MessageType } from '../domain/messages';
import { DELAY_PREFIX, dlqOf, PARK_EXCHANGE, RETURN_EXCHANGE, workQueues, type Definitions } from '../topology/definitions';

type Json = Record<string, unknown>;

const AMQP_BINDING_VERSION = '0.3.0';
const TRACEPARENT_PATTERN = '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$';

/** A message as the broker carries it: as published, a retry's copy, or a parked copy. */
type Copy = 'event' | 'retry' | 'parked';

/** Message schemas are draft-07 JSON Schema, as AsyncAPI's default schema format is; described as consumers accept them (unknown fields ignored). */
function payloadSchema(schema: z.ZodType): Json {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-7', io: 'input', unrepresentable: 'any' }) as Json;
  return rest;
}

/** Whether a message published with `routingKey` to an exchange of `type` follows a binding with `bindingKey`. */
export function routes(type: string, bindingKey: string, routingKey: string): boolean {
  if (type === 'fanout') return true;
  if (type === 'direct') return bindingKey === routingKey;
  if (type !== 'topic') return false;
  const pattern = bindingKey.split('.');
  const words = routingKey.split('.');
  // `*` is one word, `#` zero or more.
  const match = (p: number, w: number): boolean => {
    if (p === pattern.length) return w === words.length;
    if (pattern[p] === '#') return match(p + 1, w) || (w < words.length && match(p, w + 1));
    return w < words.length && (pattern[p] === '*' || pattern[p] === words[w]) && match(p + 1, w + 1);
  };
  return match(0, 0);
}

/** The message types that reach `queue` from the exchange each is published to. */
function typesInto(queue: string, defs: Definitions): MessageType[] {
  const types = Object.keys(messageSchemas) as MessageType[];
  return types.filter((type) => {
    const { exchange, routingKey } = messageRoutes[type];
    const kind = defs.exchanges.find((e) => e.name === exchange)?.type ?? '';
    return defs.bindings.some(
      (b) => b.source === exchange && b.destination_type === 'queue' && b.destination === queue && routes(kind, b.routing_key, routingKey),
    );
  });
}

const text = (description: string, extra: Json = {}): Json => ({ type: 'string', description, ...extra });

/** The headers of a message: Warren's own on every event, and what a retry or a park adds. */
function headersOf(copy: Copy): Json {
  const properties: Json = {
    'x-schema-version': text(
      `major.minor of the body's schema (${SCHEMA_VERSION} now). Minor versions only add optional fields; a consumer parks a message whose major is above its own, and reads one without the header as ${SCHEMA_VERSION}`,
      { pattern: '^[0-9]+\\.[0-9]+$', examples: [SCHEMA_VERSION] },
    ),
    traceparent: text(
      "W3C trace context of the HTTP request that caused the message: with tracing on, the relay's publish span (sampled flag as its sampler decided); with it off, the caller's traceparent passed on, or a new one not flagged sampled",
      { pattern: TRACEPARENT_PATTERN },
    ),
    tracestate: text("W3C tracestate of the same trace: the caller's vendor entries, carried through unchanged; present only when the request had one", {
      maxLength: MAX_TRACESTATE_LENGTH,
    }),
  };
  if (copy !== 'event') {
    const H = WARREN_HEADERS;
    Object.assign(properties, {
      [H.error]: text(`why the last attempt failed (\`Name: message\`, at most ${MAX_ERROR_BYTES} bytes)`, { maxLength: MAX_ERROR_BYTES }),
      [H.attempts]: { type: 'integer', minimum: 1, description: 'attempts made so far' },
      [H.firstFailure]: text('when the first attempt failed (ISO-8601 UTC)', { format: 'date-time' }),
      [H.lastFailure]: text('when the last attempt failed (ISO-8601 UTC)', { format: 'date-time' }),
      [H.originalQueue]: text('the work queue it failed in; a retry comes back, and a replay goes back, only there'),
      [H.originalExchange]: text('the exchange it was first published to', { maxLength: 255 }),
      [H.originalRoutingKey]: text('the routing key it was first published with', { maxLength: 255 }),
      [H.headersDropped]: text("which of the original's own headers the copy left out, and why (too deep, too large, not encodable)", {
        maxLength: MAX_ERROR_BYTES,
      }),
    });
  }
  if (copy === 'parked') {
    properties[WARREN_HEADERS.kind] = text('why Warren parked it: permanent (can never succeed), exhausted (out of attempts) or crash-loop', {
      enum: [...PARK_KINDS],
    });
    properties['x-death'] = {
      type: 'array',
      items: { type: 'object' },
      description:
        "the broker's dead-letter history; a message the broker parked itself (its queue's delivery-limit, reason delivery_limit) carries this instead of the x-warren-* headers",
    };
  }
  const required =
    copy === 'retry'
      ? ['x-schema-version', 'traceparent', ...Object.values(WARREN_HEADERS).filter((h) => h !== WARREN_HEADERS.kind && h !== WARREN_HEADERS.headersDropped)]
      : copy === 'event'
        ? ['x-schema-version', 'traceparent']
        : [];
  return { type: 'object', properties, required };
}

/** The AMQP properties of a message (AsyncAPI's AMQP bindings have a field for `type` only; the rest are described here). */
function amqpProperties(type: string, durable: boolean, messageId: string): Json {
  return {
    content_type: { const: 'application/json' },
    message_id: { type: 'string', maxLength: MAX_MESSAGE_ID_LENGTH, description: messageId },
    type: { const: type },
    timestamp: {
      type: 'integer',
      description: durable ? 'seconds since the epoch, when the event was committed to the outbox' : 'seconds since the epoch, when it was sent',
    },
    app_id: { const: APP_ID },
    correlation_id: { type: 'string', description: 'the x-request-id of the HTTP request that caused it, when one did' },
    delivery_mode: { const: durable ? 2 : 1, description: durable ? 'persistent' : 'transient: best effort, the store holds the durable copy' },
  };
}

const COPY_SUMMARY: Record<Copy, string> = {
  event: '',
  retry: 'A retry copy, on its way through a delay queue back to the queue it failed in (warren.return, routing key = that queue). ',
  parked: "A parked copy, in the failed queue's DLQ until an operator replays or purges it. ",
};

function messageName(type: string, copy: Copy): string {
  return copy === 'event' ? type : `${type}.${copy}`;
}

function eventMessage(type: MessageType, copy: Copy): Json {
  const { exchange, routingKey } = messageRoutes[type];
  return {
    name: messageName(type, copy),
    title: type,
    summary: `${COPY_SUMMARY[copy]}Published to ${exchange} with routing key ${routingKey}; message_id is the consumers' idempotency key.`,
    contentType: 'application/json',
    headers: headersOf(copy),
    payload: payloadSchema(messageSchemas[type]),
    bindings: { amqp: { messageType: type, bindingVersion: AMQP_BINDING_VERSION } },
    'x-amqp-properties': amqpProperties(type, true, 'a UUIDv7, unique per event'),
  };
}

function liveMessage(): Json {
  return {
    name: LIVE_NOTIFICATION_TYPE,
    title: LIVE_NOTIFICATION_TYPE,
    summary: 'A notification the notifications worker stored, sent once its transaction committed: a hint to the API, whose streams read the store',
    contentType: 'application/json',
    headers: { type: 'object', properties: (headersOf('event').properties as Json) ?? {}, required: ['x-schema-version'] },
    payload: payloadSchema(liveNotificationSchema),
    bindings: { amqp: { messageType: LIVE_NOTIFICATION_TYPE, bindingVersion: AMQP_BINDING_VERSION } },
    'x-amqp-properties': amqpProperties(LIVE_NOTIFICATION_TYPE, false, "the notification's id"),
  };
}

const ref = (to: string): Json => ({ $ref: to });
const exchangeChannel = (name: string) => `exchange.${name}`;
const queueChannel = (name: string) => `queue.${name}`;

/** The AsyncAPI 3.0 document for `defs` (retargeted to the deployment's vhost) at this `version` of Warren. */
export function buildAsyncApiDocument(defs: Definitions, version: string): Json {
  const work = workQueues(defs);
  const typesOf = new Map(work.map((q) => [q, typesInto(q, defs)]));
  const consumed = [...new Set(work.flatMap((q) => typesOf.get(q)!))];
  const types = Object.keys(messageSchemas) as MessageType[];

  const messages: Json = {};
  for (const type of types) for (const copy of ['event', 'retry', 'parked'] as const) messages[messageName(type, copy)] = eventMessage(type, copy);
  messages[LIVE_NOTIFICATION_TYPE] = liveMessage();
  const listOf = (names: string[]): Json => Object.fromEntries(names.map((n) => [n, ref(`#/components/messages/${n}`)]));
  const copies = (of: readonly string[], copy: Copy) => of.map((t) => messageName(t, copy));

  const channels: Json = {};
  for (const e of defs.exchanges) {
    let carried: string[] = [];
    if (e.name === LIVE_EXCHANGE) carried = [LIVE_NOTIFICATION_TYPE];
    else if (e.name === PARK_EXCHANGE) carried = copies(consumed, 'parked');
    else if (e.name === RETURN_EXCHANGE || e.name.startsWith(DELAY_PREFIX)) carried = copies(consumed, 'retry');
    else carried = types.filter((t) => messageRoutes[t].exchange === e.name);
    channels[exchangeChannel(e.name)] = {
      address: e.name,
      title: `${e.type} exchange ${e.name}`,
      messages: listOf(carried),
      bindings: {
        amqp: {
          is: 'routingKey',
          exchange: { name: e.name, type: e.type, durable: e.durable, autoDelete: e.auto_delete, vhost: e.vhost },
          bindingVersion: AMQP_BINDING_VERSION,
        },
      },
    };
  }
  for (const q of defs.queues) {
    let carried: string[] = [];
    const workQueue = work.find((w) => dlqOf(w) === q.name);
    if (typesOf.has(q.name)) carried = [...typesOf.get(q.name)!, ...copies(typesOf.get(q.name)!, 'retry')];
    else if (workQueue) carried = copies(typesOf.get(workQueue)!, 'parked');
    else if (q.name.startsWith(DELAY_PREFIX)) carried = copies(consumed, 'retry');
    channels[queueChannel(q.name)] = {
      address: q.name,
      title: `${String(q.arguments['x-queue-type'] ?? 'classic')} queue ${q.name}`,
      messages: listOf(carried),
      bindings: {
        amqp: {
          is: 'queue',
          queue: { name: q.name, durable: q.durable, exclusive: false, autoDelete: q.auto_delete, vhost: q.vhost },
          bindingVersion: AMQP_BINDING_VERSION,
        },
      },
    };
  }

  const channelMessages = (channel: string): Json[] =>
    Object.keys((channels[channel] as { messages: Json }).messages).map((m) => ref(`#/channels/${channel}/messages/${m}`));
  const durableSend = { amqp: { deliveryMode: 2, mandatory: true, timestamp: true, bindingVersion: AMQP_BINDING_VERSION } };
  const operations: Json = {};
  // Only to exchanges the definitions have: a route elsewhere is the topology check's to refuse, not a dangling channel here.
  const published = [...new Set(types.map((t) => messageRoutes[t].exchange))].filter((x) => defs.exchanges.some((e) => e.name === x));
  for (const exchange of published) {
    operations[`publish.${exchange}`] = {
      action: 'send',
      summary: `The API's outbox relay publishes these events to ${exchange} with publisher confirms, each once it committed with the change that caused it`,
      channel: ref(`#/channels/${exchangeChannel(exchange)}`),
      messages: channelMessages(exchangeChannel(exchange)),
      bindings: durableSend,
    };
  }
  for (const queue of work) {
    operations[`consume.${queue}`] = {
      action: 'receive',
      summary: `Competing workers consume ${queue}, acking each message once its effect committed (at least once, with exactly-once effects)`,
      channel: ref(`#/channels/${queueChannel(queue)}`),
      messages: channelMessages(queueChannel(queue)),
      bindings: { amqp: { ack: true, bindingVersion: AMQP_BINDING_VERSION } },
    };
  }
  for (const e of defs.exchanges.filter((x) => x.name.startsWith(DELAY_PREFIX))) {
    operations[`retry.${e.name}`] = {
      action: 'send',
      summary: `A worker sends a failed message to wait ${e.name.slice(DELAY_PREFIX.length)}, with routing key = the queue it failed in`,
      channel: ref(`#/channels/${exchangeChannel(e.name)}`),
      messages: channelMessages(exchangeChannel(e.name)),
      bindings: durableSend,
    };
  }
  operations[`park.${PARK_EXCHANGE}`] = {
    action: 'send',
    summary: 'A worker parks a message that can never succeed or ran out of attempts, with routing key = the queue it failed in',
    channel: ref(`#/channels/${exchangeChannel(PARK_EXCHANGE)}`),
    messages: channelMessages(exchangeChannel(PARK_EXCHANGE)),
    bindings: durableSend,
  };
  operations[`publish.${LIVE_EXCHANGE}`] = {
    action: 'send',
    summary: 'The notifications worker announces each notification it stored (best effort; the API receives it on a server-named queue of its own)',
    channel: ref(`#/channels/${exchangeChannel(LIVE_EXCHANGE)}`),
    messages: channelMessages(exchangeChannel(LIVE_EXCHANGE)),
    bindings: { amqp: { deliveryMode: 1, mandatory: false, timestamp: true, bindingVersion: AMQP_BINDING_VERSION } },
  };

  const vhost = defs.vhosts[0]?.name ?? '/';
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Warren messages',
      version,
      description:
        'The events Warren publishes on RabbitMQ and the queues that carry them. Every message is JSON with the AMQP properties in x-amqp-properties and the headers below; consumers ignore fields they do not know. Generated from the schemas that validate the messages and from rabbitmq/definitions.json.',
    },
    servers: {
      broker: {
        host: '{host}',
        pathname: `/${vhost}`,
        protocol: 'amqp',
        protocolVersion: '0.9.1',
        description: `the RabbitMQ of amqp.url, vhost ${vhost}`,
        variables: { host: { default: 'localhost:5672', description: 'host:port of the broker' } },
      },
    },
    defaultContentType: 'application/json',
    channels,
    operations,
    components: { messages },
  };
}
