/** @file
 * What the console's JSON API answers, as zod schemas: the OpenAPI
 * document (src/console/openapi.ts) is generated from them and the tests
 * parse every answer with them, so the document, the tests and the
 * answers cannot drift apart.
 */
import { z } from 'zod';
import { PARK_KINDS } from '../consume/retry';
import { PARKED_STATUSES } from './parkedQuery';

const isoTime = z.iso.datetime();
const counts = z.record(z.string(), z.number().int().min(0));

export const parkedSummary = z.strictObject({
  id: z.string(),
  queue: z.string(),
  originalQueue: z.string().nullable(),
  messageId: z.string().nullable(),
  type: z.string().nullable(),
  kind: z.enum([...PARK_KINDS, 'unknown']),
  attempts: z.number().int().nullable(),
  reason: z.string().nullable(),
  firstFailure: z.string().nullable(),
  lastFailure: z.string().nullable(),
  parkedAt: isoTime,
  status: z.enum(PARKED_STATUSES),
  replayCount: z.number().int().min(0),
  failedAgainAfterReplay: z.boolean(),
});

export const parkedDetail = parkedSummary.extend({
  body: z.unknown().optional().meta({ description: 'the body parsed as JSON, when it is JSON text (absent otherwise)' }),
  bodyText: z.string().meta({ description: 'the body as stored: UTF-8 text, or base64 (bodyEncoding)' }),
  bodyEncoding: z.enum(['utf8', 'base64']),
  headers: z.record(z.string(), z.unknown()),
  properties: z.record(z.string(), z.unknown()),
  replayId: z.string().nullable(),
  statusAt: isoTime.nullable(),
  statusBy: z.string().nullable(),
  statusAction: z.string().nullable(),
  since: z.number().int().nullable().meta({ description: 'epoch ms of the first failure the message carries' }),
});

export const parkedPage = z.strictObject({ items: z.array(parkedSummary), nextCursor: z.string().nullable() });

export const parkedCount = z.strictObject({ total: z.number().int().min(0), byQueue: counts });

export const parkedSummaryGroups = z.strictObject({
  items: z.array(z.strictObject({ queue: z.string(), kind: z.string(), reason: z.string(), count: z.number().int().min(1), oldest: isoTime, newest: isoTime })),
});

export const auditEntry = z.strictObject({
  id: z.string(),
  at: isoTime,
  actor: z.string(),
  role: z.string(),
  action: z.string(),
  selection: z.unknown(),
  count: z.number().int().min(0),
  outcome: z.enum(['ok', 'failed', 'partial']),
  result: z.unknown(),
});

export const auditPage = z.strictObject({ items: z.array(auditEntry), nextCursor: z.string().nullable() });

export const actionResult = z.strictObject({
  actionId: z.string(),
  dryRun: z.boolean(),
  selected: z.number().int().min(0),
  byQueue: counts,
  taken: z.number().int().min(0),
  stale: z.number().int().min(0),
  notFound: z.number().int().min(0),
  error: z.string().optional(),
  audit: auditEntry.optional(),
});

/** GET /api/v1/actions/:id: src/console/actionProgress.ts. */
export const actionProgress = z.strictObject({
  actionId: z.string(),
  action: z.enum(['replay', 'discard']),
  actor: z.string(),
  state: z.enum(['running', 'done', 'failed', 'interrupted']),
  total: z.number().int().min(0),
  taken: z.number().int().min(0),
  stale: z.number().int().min(0),
  notFound: z.number().int().min(0),
  done: z.number().int().min(0),
  error: z.string().nullable(),
  startedAt: isoTime,
  updatedAt: isoTime,
  finishedAt: isoTime.nullable(),
});

export const consoleReadiness = z.strictObject({ status: z.enum(['ok', 'unavailable']), indexer: z.string() });

const nullableCount = z.number().int().min(0).nullable();
const nullableRate = z.number().min(0).nullable();

export const overviewResponse = z.strictObject({
  at: isoTime,
  broker: z.union([
    z.strictObject({
      queues: z.array(
        z.strictObject({
          name: z.string(),
          role: z.enum(['work', 'dlq', 'delay', 'live', 'other']),
          type: z.string(),
          messages: nullableCount,
          ready: nullableCount,
          unacked: nullableCount,
          consumers: nullableCount,
          publishRate: nullableRate.meta({ description: 'messages per second into the queue' }),
          deliverRate: nullableRate,
          ackRate: nullableRate,
          policy: z.string().nullable(),
          leader: z.string().nullable(),
          members: z.array(z.string()).nullable(),
          online: z.array(z.string()).nullable(),
        }),
      ),
    }),
    z.strictObject({ error: z.string() }),
  ]),
  outbox: z.union([
    z.strictObject({
      source: z.string(),
      backlog: nullableCount,
      relayUp: z.boolean().nullable(),
      relayLagRecentSeconds: z.number().min(0).nullable().meta({ description: 'mean commit-to-confirm time of the rows relayed since the previous look' }),
      relayLagMeanSeconds: z.number().min(0).nullable(),
      relayedTotal: nullableCount,
    }),
    z.strictObject({ source: z.string(), error: z.string() }),
  ]),
  parked: z.strictObject({
    byDlq: z.array(z.strictObject({ queue: z.string(), dlq: z.string(), inDlq: nullableCount, indexed: z.number().int().min(0) })),
    byReason: z.array(z.strictObject({ queue: z.string(), kind: z.string(), reason: z.string(), count: z.number().int().min(1) })),
  }),
  history: z.union([
    z.strictObject({
      incrSeconds: z.number().int().min(1),
      points: z.array(z.strictObject({ at: isoTime, depth: z.number().int().min(0), dlqInflow: z.number().int().min(0) })),
    }),
    z.strictObject({ error: z.string() }),
  ]),
});
