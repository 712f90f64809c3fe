/** @file
 * The console's audit log: every action an operator took (who, when, what
 * selection, how many, and how it ended), newest first. Rows are only ever
 * added.
 */
import type { Knex } from 'knex';
import { newId } from '../domain/ids';
import { AUDIT_TABLE } from '../db/migrations/console';

export interface AuditEntry {
  id: string;
  at: string;
  /** The token's name. */
  actor: string;
  role: string;
  action: string;
  selection: unknown;
  count: number;
  outcome: 'ok' | 'failed' | 'partial';
  result: unknown;
}

export type NewAuditEntry = Omit<AuditEntry, 'id' | 'at'>;

export async function recordAction(db: Knex, entry: NewAuditEntry, now: number): Promise<AuditEntry> {
  const id = newId();
  await db(AUDIT_TABLE).insert({
    id,
    at: now,
    actor: entry.actor,
    role: entry.role,
    action: entry.action,
    selection: JSON.stringify(entry.selection ?? null),
    count: entry.count,
    outcome: entry.outcome,
    result: JSON.stringify(entry.result ?? null),
  });
  return { ...entry, id, at: new Date(now).toISOString() };
}

interface AuditRow {
  id: string;
  at: number | string;
  actor: string;
  role: string;
  action: string;
  selection: string;
  count: number | string;
  outcome: string;
  result: string;
}

/** Newest first: ids are UUIDv7, so id order is time order. `before` is the id the page starts after. */
export async function listAudit(db: Knex, opts: { limit: number; before?: string; action?: string; actor?: string }): Promise<AuditEntry[]> {
  const q = db(AUDIT_TABLE).select('*').orderBy('id', 'desc').limit(opts.limit);
  if (opts.before) q.where('id', '<', opts.before);
  if (opts.action) q.where('action', opts.action);
  if (opts.actor) q.where('actor', opts.actor);
  const rows = (await q) as AuditRow[];
  return rows.map((r) => ({
    id: r.id,
    at: new Date(Number(r.at)).toISOString(),
    actor: r.actor,
    role: r.role,
    action: r.action,
    selection: JSON.parse(r.selection) as unknown,
    count: Number(r.count),
    outcome: r.outcome as AuditEntry['outcome'],
    result: JSON.parse(r.result) as unknown,
  }));
}
