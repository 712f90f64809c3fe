/** @file
 * Export of a selection of parked messages to JSON, from the console's
 * index (no DLQ is read or touched): every message in full, with the park
 * key that names it in its DLQ, so that `warren dlq replay --from-file`
 * can take exactly these messages back from their DLQs later. Capped like
 * an action (console.maxPerAction) and written to the audit log.
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import { ConflictError } from '../domain/errors';
import { PARKED_TABLE } from '../db/migrations/console';
import { recordAction } from './audit';
import type { Operator } from './operatorTokens';
import { countSelected, findParked, searchPlan } from './parkedIndex';
import { applyParkedFilter, type ParkedFilter } from './parkedQuery';
import { parkedDetail } from './responses';

export const EXPORT_FORMAT = 'warren.console.export/1';

export const exportedParked = parkedDetail.extend({
  parkKey: z.string().meta({ description: 'what names this park of the message in its DLQ (warren dlq replay --from-file matches on it)' }),
});

export const consoleExport = z.strictObject({
  format: z.literal(EXPORT_FORMAT),
  exportedAt: z.iso.datetime(),
  exportedBy: z.string(),
  selection: z.record(z.string(), z.unknown()),
  count: z.number().int().min(0),
  messages: z.array(exportedParked),
});
export type ConsoleExport = z.output<typeof consoleExport>;

/** The filter as its query string gave it (times back as ISO-8601), for the document and the audit log. */
function selectionOf(filter: ParkedFilter): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(filter)) {
    if (v === undefined) continue;
    out[k] = (k === 'from' || k === 'to') && typeof v === 'number' ? new Date(v).toISOString() : v;
  }
  return out;
}

export async function exportSelected(db: Knex, operator: Operator, filter: ParkedFilter, cap: number, now: number): Promise<ConsoleExport> {
  const { total } = await countSelected(db, filter);
  if (total > cap)
    throw new ConflictError(
      `${total} messages selected, more than one export may hold (console.maxPerAction ${cap}): narrow the selection`,
      'too_many_selected',
    );
  const rows = (await applyParkedFilter(db(PARKED_TABLE).select('id', 'park_key'), filter, await searchPlan(db, filter)).orderBy([
    { column: 'parked_at', order: 'desc' },
    { column: 'id', order: 'desc' },
  ])) as { id: string; park_key: string }[];
  const messages: ConsoleExport['messages'] = [];
  for (const row of rows) {
    const m = await findParked(db, row.id);
    if (m) messages.push({ ...m, parkKey: row.park_key });
  }
  const selection = selectionOf(filter);
  await recordAction(
    db,
    { actor: operator.name, role: operator.role, action: 'export', selection, count: messages.length, outcome: 'ok', result: { exported: messages.length } },
    now,
  );
  return { format: EXPORT_FORMAT, exportedAt: new Date(now).toISOString(), exportedBy: operator.name, selection, count: messages.length, messages };
}

/** The attachment name an export is offered under. */
export function exportFileName(now: number): string {
  return `warren-parked-${new Date(now).toISOString().replace(/[:.]/g, '-')}.json`;
}
