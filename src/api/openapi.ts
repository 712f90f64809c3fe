import { z } from 'zod';
import {
  analyticsSummary,
  createdUser,
  errorBody,
  hashtagList,
  issuedToken,
  liveness,
  notificationResponse,
  pageOf,
  readiness,
  tokenInfo,
  tokenList,
  tweetResponse,
  userAnalytics,
  userResponse,
} from './responses';
import { MAX_KEY_LENGTH } from './middleware/idempotency';
import { createTweetBody, createUserBody, listQuery, patchUserBody, STREAM_POSITION_PATTERN, streamQuery, topQuery } from './validation';

/**
 * The OpenAPI 3.1 document, generated from the zod schemas that validate
 * requests (src/api/validation.ts) and describe responses
 * (src/api/responses.ts). Each operation below names its schemas; the
 * schemas themselves are never restated here, so the document and the
 * validation cannot drift. test/unit/api/openapi.test.ts checks that the
 * router serves exactly the operations listed.
 */
type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
  /** Default application/json. */
  contentType?: string;
}

export interface OperationSpec {
  method: Method;
  /** Koa router syntax: `/users/:id`. */
  path: string;
  summary: string;
  tag: string;
  /** Needs `Authorization: Bearer` (and, where the path names a user, that user's token). */
  auth?: boolean;
  /** Path parameters (each a UUID) and what they name. */
  params?: Record<string, string>;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Honours `Idempotency-Key`. */
  idempotent?: boolean;
  /** Emits an event through the outbox: 503 while its backlog is over `outbox.maxBacklog`. */
  emits?: boolean;
  /** Answers with the stored notifications after `Last-Event-ID`, then live ones. */
  resumable?: boolean;
  ok: Record<number, ResponseSpec>;
  /** Error statuses beyond those implied by auth, params, query and body. */
  errors?: number[];
  /** What an error status means for this operation, where the general text (STATUS_TEXT) would not say it. */
  errorText?: Partial<Record<number, string>>;
  /** Answers without the database (so never 503 `database_unavailable`). */
  noDatabase?: boolean;
}

const user = { id: 'the user' };
const json = (description: string, schema: z.ZodType): ResponseSpec => ({ description, schema });

export const operations: OperationSpec[] = [
  { method: 'get', path: '/healthz', summary: 'Liveness: the process answers', tag: 'health', noDatabase: true, ok: { 200: json('alive', liveness) } },
  {
    method: 'get',
    path: '/readyz',
    summary: 'Readiness: ready while it can take writes (database, writer, outbox backlog); broker, topology, relay and consumers are reported',
    tag: 'health',
    ok: {
      200: json('ready (status degraded when a reported check fails)', readiness),
      503: json('not ready (cannot take writes, or draining for a stop); each check says why', readiness),
    },
  },
  {
    method: 'post',
    path: '/users',
    summary: 'Create a user and its first API token (shown once); emits user.created',
    tag: 'users',
    body: createUserBody,
    idempotent: true,
    emits: true,
    ok: { 201: json('the user and its token', createdUser) },
    errors: [409],
  },
  { method: 'get', path: '/users/:id', summary: 'A user', tag: 'users', params: user, ok: { 200: json('the user', userResponse) } },
  {
    method: 'patch',
    path: '/users/:id',
    summary: 'Change the profile; emits user.updated when something changed',
    tag: 'users',
    auth: true,
    params: user,
    body: patchUserBody,
    emits: true,
    ok: { 200: json('the user as it is now', userResponse) },
    errors: [409],
  },
  {
    method: 'post',
    path: '/users/:id/tokens',
    summary: 'Issue another API token (at most auth.maxTokens active, default 20)',
    tag: 'users',
    auth: true,
    params: user,
    ok: { 201: json('the new token (shown once)', issuedToken) },
    errors: [409],
  },
  {
    method: 'get',
    path: '/users/:id/tokens',
    summary: 'The user’s active tokens, newest first; never the secret',
    tag: 'users',
    auth: true,
    params: user,
    ok: { 200: json('the tokens; nextCursor is always null', tokenList) },
  },
  {
    method: 'delete',
    path: '/users/:id/tokens/current',
    summary: 'Revoke the token presented',
    tag: 'users',
    auth: true,
    params: user,
    ok: { 204: { description: 'revoked' } },
  },
  {
    method: 'delete',
    path: '/users/:id/tokens/:tokenId',
    summary: 'Revoke one of the user’s tokens',
    tag: 'users',
    auth: true,
    params: { id: 'the user', tokenId: 'the token (its public id)' },
    ok: { 204: { description: 'revoked' } },
  },
  {
    method: 'delete',
    path: '/users/:id/tokens',
    summary: 'Revoke every token of the user, the one presented included',
    tag: 'users',
    auth: true,
    params: user,
    ok: { 204: { description: 'all revoked' } },
  },
  {
    method: 'put',
    path: '/users/:id/following/:targetId',
    summary: 'Follow a user; emits user.followed only when new',
    tag: 'follows',
    auth: true,
    params: { id: 'the follower', targetId: 'the user to follow' },
    emits: true,
    ok: { 204: { description: 'following' } },
  },
  {
    method: 'delete',
    path: '/users/:id/following/:targetId',
    summary: 'Stop following a user; emits user.unfollowed only when a follow existed',
    tag: 'follows',
    auth: true,
    params: { id: 'the follower', targetId: 'the user followed' },
    emits: true,
    ok: { 204: { description: 'not following' } },
  },
  {
    method: 'post',
    path: '/tweets',
    summary: 'Post a tweet as the token’s user; emits tweet.created',
    tag: 'tweets',
    auth: true,
    body: createTweetBody,
    idempotent: true,
    emits: true,
    ok: { 201: json('the tweet', tweetResponse) },
  },
  { method: 'get', path: '/tweets/:id', summary: 'A tweet', tag: 'tweets', params: { id: 'the tweet' }, ok: { 200: json('the tweet', tweetResponse) } },
  {
    method: 'get',
    path: '/users/:id/timeline',
    summary: 'The user’s and their followees’ tweets, newest first',
    tag: 'tweets',
    params: user,
    query: listQuery,
    ok: { 200: json('a page of tweets', pageOf(tweetResponse)) },
    // Asked of the timeline service (src/api/timelineClient.ts): when no instance answers, 503 rather than a wait.
    errorText: {
      400: 'invalid `limit` (1–100) or `before` (not a `nextCursor` of this list), or an unknown query parameter: `details` names each',
      404: 'no such user (or an id that is not a UUID)',
      503:
        'no timeline service instance answered within timeline.deadlineMs, its retry on another instance included (`timeline_unavailable`), ' +
        'or the database is busy or unreachable (`database_unavailable`); see Retry-After',
    },
  },
  {
    method: 'get',
    path: '/users/:id/notifications',
    summary: 'The user’s notifications, newest first',
    tag: 'notifications',
    auth: true,
    params: user,
    query: listQuery,
    ok: { 200: json('a page of notifications', pageOf(notificationResponse)) },
  },
  {
    method: 'get',
    path: '/users/:id/notifications/stream',
    summary: 'The user’s notifications as Server-Sent Events',
    tag: 'notifications',
    auth: true,
    params: user,
    query: streamQuery,
    resumable: true,
    errors: [429, 503],
    ok: {
      200: {
        description:
          'An event stream that stays open. Each notification is one event: `id:` its position in the user’s stream (commit order), ' +
          '`event: notification`, `data:` the notification as JSON (the Notification schema). It first sends the stored notifications after ' +
          '`Last-Event-ID` (or `lastEventId`), then each one stored later, each once; comment lines are heartbeats.',
        contentType: 'text/event-stream',
        schema: z.string(),
      },
    },
  },
  {
    method: 'get',
    path: '/analytics/users/:id',
    summary: 'Tweet count, last tweet time, top hashtags and mentions of a user',
    tag: 'analytics',
    params: user,
    ok: { 200: json('the user’s analytics', userAnalytics) },
  },
  {
    method: 'get',
    path: '/analytics/hashtags',
    summary: 'Top hashtags overall (case-folded); not paged',
    tag: 'analytics',
    query: topQuery,
    ok: { 200: json('the top hashtags; nextCursor is always null', hashtagList) },
  },
  {
    method: 'get',
    path: '/analytics/summary',
    summary: 'Totals and tweets per hour (last 24 hours)',
    tag: 'analytics',
    ok: { 200: json('the summary', analyticsSummary) },
  },
  {
    method: 'get',
    path: '/metrics',
    summary: 'Prometheus metrics of this process (text exposition format)',
    tag: 'meta',
    noDatabase: true,
    ok: { 200: { description: 'Prometheus text format 0.0.4', contentType: 'text/plain', schema: z.string() } },
  },
  {
    method: 'get',
    path: '/openapi.json',
    summary: 'This document',
    tag: 'meta',
    noDatabase: true,
    ok: { 200: { description: 'OpenAPI 3.1', schema: z.record(z.string(), z.unknown()) } },
  },
  {
    method: 'get',
    path: '/asyncapi.json',
    summary:
      "The AsyncAPI 3.0 document of the messages Warren publishes on RabbitMQ, generated from the schemas that validate them and the broker's definitions",
    tag: 'meta',
    noDatabase: true,
    ok: { 200: { description: 'AsyncAPI 3.0', schema: z.record(z.string(), z.unknown()) } },
  },
];

/**
 * Whether the operation at `method` and `path` takes a request body. The
 * others ignore one (it is neither parsed nor refused), so that a stray body
 * never earns a 400 or 415 the document does not list for them.
 */
export function takesBody(method: string, path: string): boolean {
  return BODY_ROUTES.some((r) => r.method === method.toLowerCase() && r.pattern.test(path));
}

// As the router matches: case-insensitive, an optional trailing slash.
const BODY_ROUTES = operations
  .filter((op) => op.body)
  .map((op) => ({ method: op.method, pattern: new RegExp(`^${op.path.replace(/:[A-Za-z0-9_]+/g, '[^/]+')}/?$`, 'i') }));

/** `/users/:id` -> `/users/{id}` (OpenAPI's path template). */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** Named once under components.schemas and referenced everywhere else. */
const NAMED: [string, z.ZodType][] = [
  ['Error', errorBody],
  ['User', userResponse],
  ['IssuedToken', issuedToken],
  ['Token', tokenInfo],
  ['Tweet', tweetResponse],
  ['Notification', notificationResponse],
];

const STATUS_TEXT: Record<number, string> = {
  400: 'invalid request: `details` names each field',
  401: 'no valid token (`unauthorized`), or an expired one (`token_expired`)',
  403: 'the token belongs to another user',
  404: 'no such resource (or an id that is not a UUID)',
  409: 'conflict: handle taken, an Idempotency-Key reused with another body, or auth.maxTokens active tokens already (`too_many_tokens`)',
  413: 'the body is larger than http.bodyLimitBytes',
  415: 'the body is not application/json',
  429: 'too many at once for this caller or process (open notification streams: streams.maxPerUser, streams.maxPerProcess); see Retry-After',
  503: 'unavailable for now (outbox backlog over outbox.maxBacklog, database busy or unreachable); see Retry-After',
};

/** Response headers the API sets, by status, beyond x-request-id. */
const STATUS_HEADERS: Record<number, Record<string, JsonSchema>> = {
  401: { 'WWW-Authenticate': { description: 'the scheme to authenticate with', required: true, schema: { type: 'string', const: 'Bearer realm="warren"' } } },
  429: { 'Retry-After': { description: 'seconds to wait before trying again', required: true, schema: { type: 'integer', minimum: 0 } } },
  503: { 'Retry-After': { description: 'seconds to wait before trying again', required: true, schema: { type: 'integer', minimum: 0 } } },
};

const replayedHeader = {
  'Idempotent-Replayed': {
    description: '`true` when this is the stored first response to an earlier request with the same Idempotency-Key (nothing was done again)',
    required: false,
    schema: { type: 'string', enum: ['true'] },
  },
};

type JsonSchema = Record<string, unknown>;

/**
 * A schema whose metadata carries `openapi` is described by that instead
 * (a query parameter parsed from text into an integer, see validation.ts).
 */
function wireSchema(ctx: { zodSchema: z.core.$ZodType; jsonSchema: JsonSchema }): void {
  const wire = (z.globalRegistry.get(ctx.zodSchema) as { openapi?: JsonSchema } | undefined)?.openapi;
  if (wire) {
    const { description } = ctx.jsonSchema;
    for (const key of Object.keys(ctx.jsonSchema)) delete ctx.jsonSchema[key];
    Object.assign(ctx.jsonSchema, description === undefined ? {} : { description }, wire);
  }
  delete ctx.jsonSchema.openapi;
}

/** Every zod schema of the document converted in one pass, so shared ones become `$ref`s. */
function convertSchemas(): { components: Record<string, JsonSchema>; inline: Map<z.ZodType, JsonSchema> } {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of NAMED) registry.add(schema, { id });
  const named = new Set(NAMED.map(([, s]) => s));
  const anonymous: z.ZodType[] = [];
  const add = (schema: z.ZodType | undefined) => {
    if (!schema || named.has(schema) || registry.has(schema)) return;
    registry.add(schema, { id: `inline.${anonymous.length}` });
    anonymous.push(schema);
  };
  for (const op of operations) {
    add(op.query);
    add(op.body);
    for (const r of Object.values(op.ok)) add(r.schema);
  }
  // Requests are described as clients send them (before transforms); responses have none.
  const { schemas } = z.toJSONSchema(registry, { uri: (id) => `#/components/schemas/${id}`, io: 'input', unrepresentable: 'any', override: wireSchema });
  const clean = (s: JsonSchema): JsonSchema => {
    const { $schema: _s, $id: _i, ...rest } = s;
    return rest;
  };
  const components = Object.fromEntries(NAMED.map(([id]) => [id, clean(schemas[id] as JsonSchema)]));
  const inline = new Map(anonymous.map((schema, i) => [schema, clean(schemas[`inline.${i}`] as JsonSchema)]));
  return { components, inline };
}

function schemaOf(schema: z.ZodType, inline: Map<z.ZodType, JsonSchema>): JsonSchema {
  const name = NAMED.find(([, s]) => s === schema)?.[0];
  return name ? { $ref: `#/components/schemas/${name}` } : inline.get(schema)!;
}

const requestIdHeader = {
  'x-request-id': { description: 'the request id (the caller’s if sane, else generated)', required: true, schema: { type: 'string', minLength: 1 } },
};

function errorStatuses(op: OperationSpec): number[] {
  const statuses = new Set(op.errors ?? []);
  if (op.query || op.body || op.params) statuses.add(400);
  if (op.auth) statuses.add(401);
  if (op.auth && op.params) statuses.add(403);
  if (op.params) statuses.add(404);
  if (op.body) [413, 415].forEach((s) => statuses.add(s));
  if (!op.noDatabase) statuses.add(503);
  if (op.idempotent) statuses.add(409);
  return [...statuses].sort();
}

function parametersOf(op: OperationSpec, inline: Map<z.ZodType, JsonSchema>): JsonSchema[] {
  const out: JsonSchema[] = [];
  for (const [name, what] of Object.entries(op.params ?? {})) {
    out.push({ name, in: 'path', required: true, description: `the id of ${what}`, schema: { type: 'string', format: 'uuid' } });
  }
  if (op.query) {
    const q = inline.get(op.query)!;
    const required = new Set((q.required as string[] | undefined) ?? []);
    for (const [name, schema] of Object.entries(q.properties as Record<string, JsonSchema>)) {
      const { description, ...rest } = schema;
      out.push({ name, in: 'query', required: required.has(name), ...(description ? { description } : {}), schema: rest });
    }
  }
  if (op.idempotent) {
    out.push({
      name: 'Idempotency-Key',
      in: 'header',
      required: false,
      schema: { type: 'string', minLength: 1, maxLength: MAX_KEY_LENGTH },
      description: 'a repeat within idempotency.ttlHours gets the first response; the same key with another body is 409',
    });
  }
  if (op.resumable) {
    out.push({
      name: 'Last-Event-ID',
      in: 'header',
      required: false,
      schema: { type: 'string', pattern: STREAM_POSITION_PATTERN.source },
      description: 'sent by a reconnecting EventSource: the stored notifications after this event are sent first',
    });
  }
  return out;
}

function operationObject(op: OperationSpec, inline: Map<z.ZodType, JsonSchema>): JsonSchema {
  const responses: Record<string, JsonSchema> = {};
  for (const [status, r] of Object.entries(op.ok)) {
    responses[status] = {
      description: r.description,
      headers: { ...requestIdHeader, ...(op.idempotent && Number(status) < 300 ? replayedHeader : {}) },
      ...(r.schema ? { content: { [r.contentType ?? 'application/json']: { schema: schemaOf(r.schema, inline) } } } : {}),
    };
  }
  for (const status of errorStatuses(op)) {
    responses[String(status)] ??= {
      description: op.errorText?.[status] ?? STATUS_TEXT[status] ?? 'error',
      headers: { ...requestIdHeader, ...STATUS_HEADERS[status] },
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  const parameters = parametersOf(op, inline);
  return {
    operationId: `${op.method}${openApiPath(op.path)
      .replace(/[{}]/g, '')
      .replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ?? '').toUpperCase())}`,
    summary: op.summary,
    tags: [op.tag],
    ...(op.auth ? { security: [{ bearerAuth: [] }] } : {}),
    ...(parameters.length ? { parameters } : {}),
    ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(op.body, inline) } } } } : {}),
    responses,
  };
}

/** The whole document; built once per process (it depends on nothing at run time). */
export function buildOpenApiDocument(version: string): JsonSchema {
  const { components, inline } = convertSchemas();
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const op of operations) (paths[openApiPath(op.path)] ??= {})[op.method] = operationObject(op, inline);
  return {
    openapi: '3.1.0',
    info: {
      title: 'Warren API',
      version,
      description: 'Users, follows, tweets, timelines, notifications and analytics. JSON in and out; errors are `{ error: { code, message, details? } }`.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    // Relative: the API serves this document itself, at http.host:http.port (127.0.0.1:3000 by default).
    servers: [{ url: '/', description: 'the API that served this document (`warren api`, http.host and http.port)' }],
    paths,
    components: {
      schemas: components,
      securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'wrn_ followed by 43 base64url characters' } },
    },
  };
}
