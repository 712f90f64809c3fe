/** @file
 * A replay's or discard's progress, kept in the console's database so that
 * any console process can answer for it (GET /api/v1/actions/:id, the
 * action page): how many of the selection were taken so far, written at
 * most every PROGRESS_INTERVAL_MS while the action runs (a heartbeat too),
 * and its outcome once it ends. An action whose process died stops beating:
 * after STALLED_AFTER_MS it reads as `interrupted`, what it took so far
 * marked in the index and audited or not at all.
 */
import type { Knex } from 'knex';
import { ACTIONS_TABLE } from '../db/migrations/console';

export const PROGRESS_INTERVAL_MS = 500;
export const STALLED_AFTER_MS = 30_000;

export type ActionState = 'running' | 'done' | 'failed' | 'interrupted';

export interface ActionProgressView {
  actionId: string;
  action: 'replay' | 'discard';
  actor: string;
  state: ActionState;
  /** Selected when it started. */
  total: number;
  /** Taken from their DLQs so far (replayed, or discarded). */
  taken: number;
  /** Met and left parked (replay only, as older than the inbox retention), counted as each queue's pass ends. */
  stale: number;
  /** Selected but no longer in their DLQ, counted when the action ends. */
  notFound: number;
  /** Taken, stale and not found: the part of the selection dealt with. */
  done: number;
  error: string | null;
  startedAt: string;
  updatedAt: string;
  finishedAt: string | null;
}

interface ActionRow {
  id: string;
  action: string;
  actor: string;
  state: string;
  total: number | string;
  taken: number | string;
  stale: number | string;
  not_found: number | string;
  error: string | null;
  started_at: number | string;
  updated_at: number | string;
  finished_at: number | string | null;
}

/** One running action's record: counts in memory, written on a timer and at the end. */
export class ActionProgress {
  private taken = 0;
  private stale = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly db: Knex,
    readonly actionId: string,
    private readonly now: () => number,
  ) {}

  static async start(db: Knex, actionId: string, action: 'replay' | 'discard', actor: string, total: number, now: () => number): Promise<ActionProgress> {
    const at = now();
    await db(ACTIONS_TABLE).insert({ id: actionId, action, actor, state: 'running', total, started_at: at, updated_at: at });
    const progress = new ActionProgress(db, actionId, now);
    progress.timer = setInterval(() => void progress.write(), PROGRESS_INTERVAL_MS);
    progress.timer.unref();
    return progress;
  }

  /** One more message taken from its DLQ. */
  tookOne(): void {
    this.taken++;
  }

  /** A queue's pass ended, leaving these parked as stale. */
  leftStale(n: number): void {
    this.stale += n;
  }

  /** Writes the counts and the heartbeat, one write after another; a failed one is made good by the next tick. */
  private write(): Promise<void> {
    this.writing = this.writing.then(async () => {
      try {
        await this.db(ACTIONS_TABLE).where({ id: this.actionId, state: 'running' }).update({ taken: this.taken, stale: this.stale, updated_at: this.now() });
      } catch {
        // The action goes on; its page shows the last counts written.
      }
    });
    return this.writing;
  }

  /** The outcome, after the index was marked and the audit written. */
  async finish(outcome: { taken: number; stale: number; notFound: number; error?: string }): Promise<void> {
    clearInterval(this.timer);
    await this.writing;
    const at = this.now();
    await this.db(ACTIONS_TABLE)
      .where({ id: this.actionId })
      .update({
        state: outcome.error ? 'failed' : 'done',
        taken: outcome.taken,
        stale: outcome.stale,
        not_found: outcome.notFound,
        error: outcome.error ?? null,
        updated_at: at,
        finished_at: at,
      });
  }
}

const iso = (ms: number | string) => new Date(Number(ms)).toISOString();

export async function findAction(db: Knex, id: string, now: number): Promise<ActionProgressView | undefined> {
  const row = (await db(ACTIONS_TABLE).where({ id }).first()) as ActionRow | undefined;
  if (!row) return undefined;
  const stalled = row.state === 'running' && now - Number(row.updated_at) > STALLED_AFTER_MS;
  const [taken, stale, notFound] = [Number(row.taken), Number(row.stale), Number(row.not_found)];
  return {
    actionId: row.id,
    action: row.action as 'replay' | 'discard',
    actor: row.actor,
    state: stalled ? 'interrupted' : (row.state as ActionState),
    total: Number(row.total),
    taken,
    stale,
    notFound,
    done: taken + stale + notFound,
    error: row.error,
    startedAt: iso(row.started_at),
    updatedAt: iso(row.updated_at),
    finishedAt: row.finished_at === null ? null : iso(row.finished_at),
  };
}
