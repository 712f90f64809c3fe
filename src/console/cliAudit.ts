/** @file
 * `warren dlq replay|discard|purge` write what they did into the console's
 * audit log, beside the console's own actions, when this host has the
 * console's database (its tables migrated): who is the operating-system
 * user who ran the command. The index rows of the messages a command took
 * from their DLQ are marked as the console's own actions mark them.
 * Auditing never undoes a command that ran: a log that cannot be written
 * is said on stderr.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { Config } from '../config';
import { AUDIT_TABLE, PARKED_TABLE } from '../db/migrations/console';
import { openDatabase, sqliteFile } from '../db/knex';
import { recordAction, type NewAuditEntry } from './audit';
import type { ParkStatus } from './parkRecord';

export function cliActor(): string {
  let user = 'unknown';
  try {
    user = os.userInfo().username;
  } catch {
    // No passwd entry (a container's arbitrary uid): the uid says as much as there is.
    user = `uid ${process.getuid?.() ?? '?'}`;
  }
  return `cli:${user}@${os.hostname()}`.slice(0, 100);
}

/** Returns what went wrong, or '' once written (or when there is no console database to write to). */
/** Index rows (by park key) a command took from their DLQ, and what it made of them. */
export interface CliTaken {
  parkKeys: string[];
  status: Extract<ParkStatus, 'replayed' | 'discarded'>;
  actionId: string;
}

export async function auditCliAction(config: Config, entry: Omit<NewAuditEntry, 'actor' | 'role'>, now = Date.now(), taken?: CliTaken): Promise<string> {
  let db: ReturnType<typeof openDatabase> | undefined;
  try {
    // Never create the console's file where there is none: this host does not run the console.
    if (config.database.client === 'sqlite' && !fs.existsSync(sqliteFile(config, 'console'))) return '';
    db = openDatabase(config, 'console');
    if (!(await db.schema.hasTable(AUDIT_TABLE))) return '';
    const actor = cliActor();
    await recordAction(db, { ...entry, actor, role: 'cli' }, now);
    for (let i = 0; taken && i < taken.parkKeys.length; i += 500) {
      await db(PARKED_TABLE)
        .whereIn('park_key', taken.parkKeys.slice(i, i + 500))
        .where('status', 'parked' satisfies ParkStatus)
        .update({ status: taken.status, status_at: now, status_by: actor, status_action: taken.actionId });
    }
    return '';
  } catch (err) {
    return `not written to the console's audit log: ${(err as Error).message}`;
  } finally {
    await db?.destroy();
  }
}
