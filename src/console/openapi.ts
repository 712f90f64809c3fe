/** @file
 * The console API's OpenAPI 3.1 document, served at `/api/v1/openapi.json`:
 * generated, as the API's is (src/api/openapi.ts), from the zod schemas
 * that validate the requests (src/console/parkedQuery.ts, actions.ts,
 * routes/audit.ts) and describe the answers (src/console/responses.ts).
 * Each operation names its schemas and never restates them.
 * test/unit/console/openapi.test.ts checks that the app serves exactly the
 * operations listed and that each answers with the shapes listed.
 */
import { z } from 'zod';
import { openApiPath } from '../api/openapi';
import { errorBody, liveness } from '../api/responses';
import { discardBody, replayBody } from './actions';
import { consoleExport } from './exportSelection';
import { parkedFilter, parkedListQuery } from './parkedQuery';
import {
  actionProgress,
  actionResult,
  auditEntry,
  auditPage,
  consoleReadiness,
  overviewResponse,
  parkedCount,
  parkedDetail,
  parkedPage,
  parkedSummary,
  parkedSummaryGroups,
} from './responses';
import { auditQuery } from './routes/audit';

type JsonSchema = Record<string, unknown>;

interface ResponseSpec {
  description: string;
  schema?: z.ZodType;
}

export interface ConsoleOperation {
  method: 'get' | 'post';
  /** Koa router syntax. */
  path: string;
  summary: string;
  tag: string;
  /** Needs an operator token (every `/api/v1/` route); a write also the operator role. */
  auth?: boolean;
  params?: Record<string, string>;
  query?: z.ZodObject;
  body?: z.ZodType;
  ok: Record<number, ResponseSpec>;
  /** Error statuses beyond those implied by auth, params, query and body. */
  errors?: number[];
}

const json = (description: string, schema: z.ZodType): ResponseSpec => ({ description, schema });

export const consoleOperations: ConsoleOperation[] = [
  { method: 'get', path: '/healthz', summary: 'Liveness: the process answers (no token needed)', tag: 'health', ok: { 200: json('alive', liveness) } },
  {
    method: 'get',
    path: '/readyz',
    summary: 'Readiness: ready while the indexer consumes warren.parked.index (no token needed)',
    tag: 'health',
    ok: { 200: json('the indexer consumes', consoleReadiness), 503: json('the indexer does not consume (yet); `indexer` says why', consoleReadiness) },
  },
  {
    method: 'get',
    path: '/api/v1/parked',
    summary: 'Parked messages of every DLQ as the index has them, newest park first, with search and filters; never touches a DLQ',
    tag: 'parked',
    auth: true,
    query: parkedListQuery,
    ok: { 200: json('a page of parked messages', parkedPage) },
  },
  {
    method: 'get',
    path: '/api/v1/parked/count',
    summary: 'How many messages a filter selects, in all and per queue',
    tag: 'parked',
    auth: true,
    query: parkedFilter,
    ok: { 200: json('the counts', parkedCount) },
  },
  {
    method: 'get',
    path: '/api/v1/parked/summary',
    summary: 'Parked messages grouped by queue, kind and normalised reason',
    tag: 'parked',
    auth: true,
    ok: { 200: json('the groups, largest first', parkedSummaryGroups) },
  },
  {
    method: 'get',
    path: '/api/v1/parked/export',
    summary:
      'Every message a filter selects, in full, as one JSON document (an attachment) from the index; no DLQ is touched; audited. warren dlq replay --from-file takes the file',
    tag: 'parked',
    auth: true,
    query: parkedFilter,
    errors: [409],
    ok: { 200: json('the export', consoleExport) },
  },
  {
    method: 'get',
    path: '/api/v1/parked/:id',
    summary: 'One parked message in full: body, properties, headers (x-warren-*, x-death), status',
    tag: 'parked',
    auth: true,
    params: { id: 'the index row (as the list gives it)' },
    ok: { 200: json('the message', parkedDetail) },
  },
  {
    method: 'post',
    path: '/api/v1/parked/replay',
    summary:
      'Replay messages picked by id or by a filter to the queue each came from (dryRun: count only); every copy confirmed before its original is acked; audited',
    tag: 'actions',
    auth: true,
    body: replayBody,
    errors: [409, 503],
    ok: {
      200: json('what was selected and taken (error: where a pass stopped)', actionResult),
      202: json('background: what was selected, the replay started; its progress at the Location, GET /api/v1/actions/{id}', actionResult),
    },
  },
  {
    method: 'post',
    path: '/api/v1/parked/discard',
    summary: 'Discard messages picked by id or by a filter from their DLQs, with a reason (dryRun: count only); audited',
    tag: 'actions',
    auth: true,
    body: discardBody,
    errors: [409, 503],
    ok: {
      200: json('what was selected and taken (error: where a pass stopped)', actionResult),
      202: json('background: what was selected, the discard started; its progress at the Location, GET /api/v1/actions/{id}', actionResult),
    },
  },
  {
    method: 'get',
    path: '/api/v1/actions/:id',
    summary:
      "A replay's or discard's progress: taken so far of the selection, written every half second while it runs, and its outcome; interrupted when its process stopped beating",
    tag: 'actions',
    auth: true,
    params: { id: 'the actionId a replay or discard answered with' },
    ok: { 200: json('the action and its progress', actionProgress) },
  },
  {
    method: 'get',
    path: '/api/v1/audit',
    summary: 'The audit log of every action from the console and from warren dlq, newest first',
    tag: 'audit',
    auth: true,
    query: auditQuery,
    ok: { 200: json('a page of the audit log', auditPage) },
  },
  {
    method: 'get',
    path: '/api/v1/overview',
    summary:
      "Every queue's depth, consumers and rates, the outbox backlog and relay lag (the API's /metrics), parked messages per DLQ and per reason, and the last hour's depth and DLQ inflow per minute (the management API's samples); a source that fails says why in its part",
    tag: 'overview',
    auth: true,
    ok: { 200: json('the overview', overviewResponse) },
  },
  {
    method: 'get',
    path: '/api/v1/openapi.json',
    summary: 'This document',
    tag: 'meta',
    auth: true,
    ok: { 200: json('OpenAPI 3.1', z.record(z.string(), z.unknown())) },
  },
];

/** Named once under components.schemas and referenced everywhere else. */
const NAMED: [string, z.ZodType][] = [
  ['Error', errorBody],
  ['ParkedSummary', parkedSummary],
  ['ParkedMessage', parkedDetail],
  ['AuditEntry', auditEntry],
  ['ActionResult', actionResult],
];

const STATUS_TEXT: Record<number, string> = {
  400: 'invalid request: `details` names each field',
  401: 'no valid operator token (warren console token create)',
  403: 'a viewer’s token: only an operator token may change anything',
  404: 'no such parked message',
  409: 'more messages selected than one action or export may take (console.maxPerAction, `too_many_selected`): narrow the selection',
  413: 'the body is larger than http.bodyLimitBytes',
  415: 'the body is not application/json',
  503: 'unavailable for now (no broker to act with, database busy or unreachable); see Retry-After',
};

const STATUS_HEADERS: Record<number, Record<string, JsonSchema>> = {
  401: { 'WWW-Authenticate': { description: 'the scheme to authenticate with', required: true, schema: { type: 'string' } } },
  503: { 'Retry-After': { description: 'seconds to wait before trying again', required: true, schema: { type: 'integer', minimum: 0 } } },
};

const requestIdHeader = {
  'x-request-id': { description: 'the request id (the caller’s if sane, else generated)', required: true, schema: { type: 'string', minLength: 1 } },
};

/** A schema whose metadata carries `openapi` is described by that instead (a query integer arrives as text). */
function wireSchema(ctx: { zodSchema: z.core.$ZodType; jsonSchema: JsonSchema }): void {
  const wire = (z.globalRegistry.get(ctx.zodSchema) as { openapi?: JsonSchema } | undefined)?.openapi;
  if (wire) {
    const { description } = ctx.jsonSchema;
    for (const key of Object.keys(ctx.jsonSchema)) delete ctx.jsonSchema[key];
    Object.assign(ctx.jsonSchema, description === undefined ? {} : { description }, wire);
  }
  delete ctx.jsonSchema.openapi;
}

function convertSchemas(): { components: Record<string, JsonSchema>; inline: Map<z.ZodType, JsonSchema> } {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of NAMED) registry.add(schema, { id });
  const anonymous: z.ZodType[] = [];
  const add = (schema: z.ZodType | undefined) => {
    if (!schema || registry.has(schema)) return;
    registry.add(schema, { id: `inline.${anonymous.length}` });
    anonymous.push(schema);
  };
  for (const op of consoleOperations) {
    add(op.query);
    add(op.body);
    for (const r of Object.values(op.ok)) add(r.schema);
  }
  // Requests as clients send them (before transforms and defaults).
  const { schemas } = z.toJSONSchema(registry, { uri: (id) => `#/components/schemas/${id}`, io: 'input', unrepresentable: 'any', override: wireSchema });
  const clean = ({ $schema: _s, $id: _i, ...rest }: JsonSchema): JsonSchema => rest;
  return {
    components: Object.fromEntries(NAMED.map(([id]) => [id, clean(schemas[id] as JsonSchema)])),
    inline: new Map(anonymous.map((schema, i) => [schema, clean(schemas[`inline.${i}`] as JsonSchema)])),
  };
}

function schemaOf(schema: z.ZodType, inline: Map<z.ZodType, JsonSchema>): JsonSchema {
  const name = NAMED.find(([, s]) => s === schema)?.[0];
  return name ? { $ref: `#/components/schemas/${name}` } : inline.get(schema)!;
}

function errorStatuses(op: ConsoleOperation): number[] {
  const statuses = new Set(op.errors ?? []);
  if (op.query || op.body || op.params) statuses.add(400);
  if (op.auth) statuses.add(401);
  if (op.auth && op.method !== 'get') statuses.add(403);
  if (op.params) statuses.add(404);
  if (op.body) [413, 415].forEach((s) => statuses.add(s));
  if (/^\/api\/v1\/(parked|audit|overview)/.test(op.path)) statuses.add(503);
  return [...statuses].sort();
}

function parametersOf(op: ConsoleOperation, inline: Map<z.ZodType, JsonSchema>): JsonSchema[] {
  const out: JsonSchema[] = Object.entries(op.params ?? {}).map(([name, what]) => ({
    name,
    in: 'path',
    required: true,
    description: `the id of ${what}`,
    schema: { type: 'string', minLength: 1 },
  }));
  if (op.query) {
    const q = inline.get(op.query)!;
    const required = new Set((q.required as string[] | undefined) ?? []);
    for (const [name, schema] of Object.entries(q.properties as Record<string, JsonSchema>)) {
      const { description, ...rest } = schema;
      out.push({ name, in: 'query', required: required.has(name), ...(description ? { description } : {}), schema: rest });
    }
  }
  return out;
}

function operationObject(op: ConsoleOperation, inline: Map<z.ZodType, JsonSchema>): JsonSchema {
  const responses: Record<string, JsonSchema> = {};
  for (const [status, r] of Object.entries(op.ok)) {
    responses[status] = {
      description: r.description,
      headers: requestIdHeader,
      ...(r.schema ? { content: { 'application/json': { schema: schemaOf(r.schema, inline) } } } : {}),
    };
  }
  for (const status of errorStatuses(op)) {
    responses[String(status)] ??= {
      description: STATUS_TEXT[status] ?? 'error',
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
    ...(op.auth ? { security: [{ operatorToken: [] }] } : {}),
    ...(parameters.length ? { parameters } : {}),
    ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(op.body, inline) } } } } : {}),
    responses,
  };
}

/** The whole document; it depends on nothing at run time. */
export function buildConsoleOpenApiDocument(version: string): JsonSchema {
  const { components, inline } = convertSchemas();
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const op of consoleOperations) (paths[openApiPath(op.path)] ??= {})[op.method] = operationObject(op, inline);
  return {
    openapi: '3.1.0',
    info: {
      title: 'Warren operator console API',
      version,
      description:
        'The parked messages of every DLQ (indexed, never taken to be read), replay and discard by id or filter, the audit log. ' +
        'Every /api/v1/ route takes an operator token as `Authorization: Bearer`; a viewer’s is refused every write (403). ' +
        'Errors are `{ error: { code, message, details? } }`.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    servers: [{ url: '/', description: 'the console that served this document (`warren console`, console.host and console.port)' }],
    paths,
    components: {
      schemas: components,
      securitySchemes: { operatorToken: { type: 'http', scheme: 'bearer', bearerFormat: 'wrc_ operator token (warren console token create)' } },
    },
  };
}
