import { deliveryLogger, type Logger } from '../log';
import type { Outcome, Settlement } from './delivery';

/** Settled deliveries by outcome; `stale` ones are counted under their outcome too; `redelivered`: runs of deliveries the broker marked redelivered. */
export type ConsumeCounts = Record<Outcome | 'stale' | 'redelivered', number>;

export function emptyCounts(): ConsumeCounts {
  return { applied: 0, duplicate: 0, ignored: 0, retried: 0, parked: 0, stale: 0, redelivered: 0 };
}

/** Keeps `counts` (what the metrics read) from each settled delivery. */
export function countSettlements(counts: ConsumeCounts): (s: Settlement) => void {
  return ({ delivery, outcome, end }) => {
    if (delivery.started && delivery.msg.fields.redelivered) counts.redelivered++;
    if (outcome) counts[outcome]++;
    if (end === 'stale') counts.stale++;
  };
}

/** The lines a settled delivery leaves: its retry or park, or that it could not be acked. */
export function logSettlements(log: Logger): (s: Settlement) => void {
  return ({ delivery, outcome, failure, end, why, error }) => {
    const { properties } = delivery.msg;
    const messageId = properties.messageId as string | undefined;
    if (outcome === 'retried') deliveryLogger(log, properties).info({ messageId, attempt: failure?.attempt, delay: failure?.delay }, 'retry scheduled');
    if (outcome === 'parked')
      deliveryLogger(log, properties).warn({ messageId, attempt: failure?.attempt, kind: failure?.kind, err: failure?.err }, 'message parked');
    if (end === 'stale') log.warn({ messageId, outcome, ...(error ? { err: error } : {}) }, `stale delivery: ${why}`);
  };
}
