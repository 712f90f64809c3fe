import { analyticsWorker } from './analytics';
import { notificationsWorker } from './notifications';
import type { WorkerDefinition } from '../consume/handler';

/** Every worker by its CLI name (`warren worker <name>`); a new worker is one line here. */
export const workers = {
  analytics: analyticsWorker,
  notifications: notificationsWorker,
} satisfies Record<WorkerDefinition['name'], WorkerDefinition>;

export type WorkerName = keyof typeof workers;
