/** @file
 * Parked messages grouped by queue, kind and normalised reason (ids,
 * numbers and quoted values replaced, so that one failure with a thousand
 * message ids is one line), from the console's index: a summary never
 * touches a DLQ. The grouping is pure; `summariseParked` reads the index.
 */
import type { Knex } from 'knex';
import { PARKED_TABLE } from '../db/migrations/console';

const UUID = /\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi;
const HEX = /\b[0-9a-f]{16,}\b/gi;
const QUOTED = /"[^"]*"|'[^']*'/g;
const NUMBER = /\b\d+(\.\d+)?\b/g;

/** A reason with what differs between messages of one failure taken out. */
export function normaliseReason(reason: string | null): string {
  if (reason === null || reason.trim() === '') return '(none)';
  return reason.replace(UUID, '<id>').replace(HEX, '<id>').replace(QUOTED, '"…"').replace(NUMBER, '<n>').replace(/\s+/g, ' ').trim().slice(0, 200);
}

export interface SummaryGroup {
  queue: string;
  kind: string;
  reason: string;
  count: number;
  /** Epoch ms of the oldest and the newest park of the group. */
  oldest: number;
  newest: number;
}

export interface ReasonCount {
  queue: string;
  kind: string;
  reason: string | null;
  count: number;
  oldest: number;
  newest: number;
}

/** Groups per-reason counts by normalised reason, the largest group first. */
export function groupByNormalisedReason(rows: ReasonCount[]): SummaryGroup[] {
  const groups = new Map<string, SummaryGroup>();
  for (const r of rows) {
    const reason = normaliseReason(r.reason);
    const key = JSON.stringify([r.queue, r.kind, reason]);
    const g = groups.get(key);
    if (!g) groups.set(key, { queue: r.queue, kind: r.kind, reason, count: r.count, oldest: r.oldest, newest: r.newest });
    else {
      g.count += r.count;
      g.oldest = Math.min(g.oldest, r.oldest);
      g.newest = Math.max(g.newest, r.newest);
    }
  }
  return [...groups.values()].sort((a, b) => b.count - a.count || a.queue.localeCompare(b.queue) || a.reason.localeCompare(b.reason));
}

/** The parked (not replayed or discarded) messages of the index, grouped. */
export async function summariseParked(db: Knex): Promise<SummaryGroup[]> {
  const rows = (await db(PARKED_TABLE)
    .where('status', 'parked')
    .select('queue', 'kind', 'reason')
    .count({ count: '*' })
    .min({ oldest: 'parked_at' })
    .max({ newest: 'parked_at' })
    .groupBy('queue', 'kind', 'reason')) as {
    queue: string;
    kind: string;
    reason: string | null;
    count: number | string;
    oldest: number | string;
    newest: number | string;
  }[];
  return groupByNormalisedReason(rows.map((r) => ({ ...r, count: Number(r.count), oldest: Number(r.oldest), newest: Number(r.newest) })));
}
