/** @file
 * The console's actions on parked messages: replay (to the queue each came
 * from) and discard, of messages picked by id or by a filter over the
 * index. Each takes from the DLQs the way `warren dlq replay` does
 * (src/ops/dlq.ts: every copy confirmed before its original is acked,
 * everything else left parked in order, the late-replay refusal), marks the
 * index rows of what it took, and is written to the audit log, failed or not.
 */
import type { GetMessage } from 'amqplib';
import type { Knex } from 'knex';
import { z } from 'zod';
import { replaySafeAgeMs } from '../db/inbox';
import { ConflictError } from '../domain/errors';
import { newId } from '../domain/ids';
import { PARKED_TABLE } from '../db/migrations/console';
import { discardParked, replayParked, type ReplayOptions, type ReplayResult } from '../ops/dlq';
import { recordAction, type AuditEntry } from './audit';
import type { Operator } from './operatorTokens';
import { applyParkedFilter, parkedFilter, type ParkedFilter } from './parkedQuery';
import { searchPlan } from './parkedIndex';
import { parkRecord, type ParkStatus } from './parkRecord';
import { ActionProgress } from './actionProgress';

const selection = {
  /** Index row ids (as the list gives them). */
  ids: z.array(z.string().min(1).max(36)).min(1).max(10_000).optional(),
  /** Or every parked message a filter selects (the list's filters). */
  filter: parkedFilter.omit({ status: true }).optional(),
  /** Only count what would be taken. */
  dryRun: z.boolean().default(false),
  /** Answer 202 once the action has started, with where its progress is (GET /api/v1/actions/:id), instead of when it ends. */
  background: z.boolean().default(false),
};

export const replayBody = z
  .strictObject({
    ...selection,
    /** Also replay messages older than their consumers' inbox records may be kept (they may be applied twice). */
    allowStale: z.boolean().default(false),
    /** A filter skips messages that failed again after a replay unless told to take them too. */
    includeFailedAgain: z.boolean().default(false),
  })
  .refine((b) => (b.ids === undefined) !== (b.filter === undefined), 'give either ids or a filter');

export const discardBody = z
  .strictObject({
    ...selection,
    reason: z.string().trim().min(1, 'say why they are discarded').max(500),
  })
  .refine((b) => (b.ids === undefined) !== (b.filter === undefined), 'give either ids or a filter');

export type ReplayBody = z.output<typeof replayBody>;
export type DiscardBody = z.output<typeof discardBody>;

export interface ActionDeps {
  db: Knex;
  /** The console's broker URL (its own user). */
  amqpUrl: string;
  /** Most messages one action may take (console.maxPerAction). */
  maxPerAction: number;
  inboxRetentionDays: number;
  publishTimeoutMs: number;
  now(): number;
  /** What takes from the DLQs: src/ops/dlq.ts unless a test hands in a fake broker's. */
  dlq?: { replay: typeof replayParked; discard: typeof discardParked };
}

interface SelectedRow {
  id: string;
  queue: string;
  park_key: string;
}

export interface ActionResult {
  actionId: string;
  dryRun: boolean;
  /** Selected in the index (parked). */
  selected: number;
  byQueue: Record<string, number>;
  /** Taken from their DLQs: replayed, or discarded. */
  taken: number;
  /** Selected, left parked: older than the inbox retention allows replaying (replay only). */
  stale: number;
  /** Selected, but no longer in their DLQ (replayed or purged with `warren dlq`): marked `gone`. */
  notFound: number;
  error?: string;
  audit?: AuditEntry;
}

async function selectRows(db: Knex, body: ReplayBody | DiscardBody, skipFailedAgain: boolean): Promise<SelectedRow[]> {
  const q = db(PARKED_TABLE).select('id', 'queue', 'park_key');
  if (body.ids) return (await q.where('status', 'parked' satisfies ParkStatus).whereIn('id', body.ids)) as SelectedRow[];
  const filter: ParkedFilter = { ...body.filter, status: 'parked' };
  applyParkedFilter(q, filter, await searchPlan(db, filter));
  if (skipFailedAgain && filter.failedAgainAfterReplay === undefined) q.where('replay_count', 0);
  return (await q) as SelectedRow[];
}

function byQueue(rows: SelectedRow[]): Map<string, SelectedRow[]> {
  const out = new Map<string, SelectedRow[]>();
  for (const r of rows) out.set(r.queue, [...(out.get(r.queue) ?? []), r]);
  return out;
}

/** The index row a message taken from `queue`'s DLQ stands for. */
export function parkKeyOf(queue: string, msg: GetMessage): string {
  return parkRecord({ content: msg.content, properties: msg.properties, routingKey: queue }).parkKey;
}

/** An action that has been counted, checked against the cap and started: what it selected, and its end. */
export interface StartedAction {
  started: ActionResult;
  finished: Promise<ActionResult>;
}

/** Actions this process runs, so that a stopping console lets them end (each is bounded by console.maxPerAction). */
const running = new Set<Promise<unknown>>();

export async function actionsFinished(): Promise<void> {
  await Promise.allSettled([...running]);
}

async function begin(
  deps: ActionDeps,
  operator: Operator,
  action: 'replay' | 'discard',
  body: ReplayBody | DiscardBody,
  take: (queue: string, opts: ReplayOptions) => Promise<ReplayResult>,
  options: Pick<ReplayOptions, 'staleBefore' | 'replayId'>,
  skipFailedAgain: boolean,
): Promise<StartedAction> {
  const actionId = options.replayId ?? newId();
  const rows = await selectRows(deps.db, body, skipFailedAgain);
  const queues = byQueue(rows);
  const counts = Object.fromEntries([...queues].map(([q, r]) => [q, r.length]));
  const base = { actionId, dryRun: body.dryRun, selected: rows.length, byQueue: counts, taken: 0, stale: 0, notFound: 0 };
  if (body.dryRun) return { started: base, finished: Promise.resolve(base) };
  if (rows.length > deps.maxPerAction) {
    throw new ConflictError(
      `${rows.length} messages selected, more than one action may take (console.maxPerAction ${deps.maxPerAction}): narrow the selection`,
      'too_many_selected',
    );
  }
  const progress = await ActionProgress.start(deps.db, actionId, action, operator.name, rows.length, deps.now);
  const finished = run(deps, operator, action, body, take, options, rows, base, progress).catch(async (err: unknown) => {
    // Marking or auditing failed after the pass: the record says so rather than running on until it reads as interrupted.
    await progress.finish({ taken: 0, stale: 0, notFound: 0, error: (err as Error).message }).catch(() => undefined);
    throw err;
  });
  running.add(finished);
  void finished.finally(() => running.delete(finished)).catch(() => undefined);
  return { started: base, finished };
}

async function run(
  deps: ActionDeps,
  operator: Operator,
  action: 'replay' | 'discard',
  body: ReplayBody | DiscardBody,
  take: (queue: string, opts: ReplayOptions) => Promise<ReplayResult>,
  options: Pick<ReplayOptions, 'staleBefore' | 'replayId'>,
  rows: SelectedRow[],
  base: ActionResult,
  progress: ActionProgress,
): Promise<ActionResult> {
  const { actionId } = base;
  const queues = byQueue(rows);
  const counts = base.byQueue;
  const result: ActionResult = { ...base };
  const taken = new Set<string>();
  const status: ParkStatus = action === 'replay' ? 'replayed' : 'discarded';
  try {
    for (const [queue, selectedRows] of queues) {
      const keys = new Set(selectedRows.map((r) => r.park_key));
      const r = await take(queue, {
        ...options,
        matches: (msg) => keys.has(parkKeyOf(queue, msg)),
        onTaken: (msg) => {
          taken.add(parkKeyOf(queue, msg));
          progress.tookOne();
        },
        publishTimeoutMs: deps.publishTimeoutMs,
      });
      result.taken += r.replayed;
      result.stale += r.stale ?? 0;
      progress.leftStale(r.stale ?? 0);
    }
  } catch (err) {
    result.error = (err as Error).message;
  }
  const now = deps.now();
  const mark = (keys: string[], to: string) =>
    keys.length === 0
      ? Promise.resolve(0)
      : deps
          .db(PARKED_TABLE)
          .whereIn('park_key', keys)
          .where('status', 'parked')
          .update({ status: to, status_at: now, status_by: operator.name, status_action: actionId });
  await mark([...taken], status);
  if (!result.error) {
    // What a complete pass did not meet is no longer in its DLQ; a stale one was met and left there.
    const stale = action === 'replay' ? result.stale : 0;
    const missing = rows.filter((r) => !taken.has(r.park_key)).map((r) => r.park_key);
    if (stale === 0) result.notFound = await mark(missing, 'gone');
    else result.notFound = Math.max(0, missing.length - stale);
  }
  result.audit = await recordAction(
    deps.db,
    {
      actor: operator.name,
      role: operator.role,
      action,
      selection: {
        ids: body.ids,
        filter: body.filter,
        ...('reason' in body ? { reason: body.reason } : {}),
        ...('allowStale' in body ? { allowStale: body.allowStale } : {}),
      },
      count: result.taken,
      outcome: result.error ? (result.taken > 0 ? 'partial' : 'failed') : 'ok',
      result: {
        selected: result.selected,
        taken: result.taken,
        stale: result.stale,
        notFound: result.notFound,
        byQueue: counts,
        ...(result.error ? { error: result.error } : {}),
      },
    },
    now,
  );
  await progress.finish(result);
  return result;
}

/** Replays the selection to the queue each message came from; the copies carry this replay's id and their replay count. */
export async function replaySelected(deps: ActionDeps, operator: Operator, body: ReplayBody): Promise<ActionResult> {
  return (await startReplay(deps, operator, body)).finished;
}

/** Deletes the selection from its DLQs, with the operator's reason in the audit log. */
export async function discardSelected(deps: ActionDeps, operator: Operator, body: DiscardBody): Promise<ActionResult> {
  return (await startDiscard(deps, operator, body)).finished;
}

/** A replay counted and started (or refused: over the cap); its progress is in the actions table until `finished`. */
export function startReplay(deps: ActionDeps, operator: Operator, body: ReplayBody): Promise<StartedAction> {
  const staleBefore = body.allowStale ? undefined : deps.now() - replaySafeAgeMs(deps.inboxRetentionDays);
  return begin(
    deps,
    operator,
    'replay',
    body,
    (queue, opts) => (deps.dlq?.replay ?? replayParked)(deps.amqpUrl, queue, opts),
    { staleBefore, replayId: newId() },
    !body.includeFailedAgain && !body.ids,
  );
}

export function startDiscard(deps: ActionDeps, operator: Operator, body: DiscardBody): Promise<StartedAction> {
  return begin(deps, operator, 'discard', body, (queue, opts) => (deps.dlq?.discard ?? discardParked)(deps.amqpUrl, queue, opts), {}, false);
}
