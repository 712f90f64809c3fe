import { analyticsWorker } from './analytics';
import { notificationsWorker } from './notifications';
import { timelineWorker } from './timeline';
import type { WorkerDeclaration } from './declaration';

/**
 * Every worker by its CLI name (`warren worker <name>`); a new worker is one
 * line here. The CLI's worker names, `warren start`'s children, the
 * per-worker configuration (amqp.users, database.roles, retry.attempts),
 * the databases `warren migrate` brings up and the test harness all follow
 * this list, in this order.
 */
export const workers = {
  analytics: analyticsWorker,
  notifications: notificationsWorker,
  timeline: timelineWorker,
} satisfies Record<string, WorkerDeclaration>;

export type WorkerName = keyof typeof workers;

export const workerNames = Object.keys(workers) as WorkerName[];

export const declaredWorkers: readonly WorkerDeclaration[] = Object.values(workers);

export function isWorkerName(name: string): name is WorkerName {
  return Object.hasOwn(workers, name);
}
