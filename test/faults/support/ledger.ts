/** @file
 * The fault suite's arithmetic, by message id: totals would let one lost
 * message and one applied twice cancel out.
 */

export interface Reconciliation {
  /** Distinct ids committed (outbox rows). */
  committed: number;
  /** Distinct committed ids applied at least once. */
  applied: number;
  /** Committed, never applied. */
  lost: string[];
  /** Applied more than once (each id once here, however often it was applied). */
  duplicated: string[];
  /** Applied, but never committed: the books cannot account for them. */
  strays: string[];
}

/**
 * Checks that the ids applied are exactly the ids committed, each once.
 * `applications` lists one id per application of its effect: an id applied
 * twice appears twice.
 */
export function reconcile(committed: Iterable<string>, applications: Iterable<string>): Reconciliation {
  const owed = new Set(committed);
  const times = new Map<string, number>();
  for (const id of applications) times.set(id, (times.get(id) ?? 0) + 1);
  const lost = [...owed].filter((id) => !times.has(id));
  const duplicated = [...times].filter(([, n]) => n > 1).map(([id]) => id);
  const strays = [...times.keys()].filter((id) => !owed.has(id));
  return { committed: owed.size, applied: owed.size - lost.length, lost, duplicated, strays };
}

/** Several reconciliations (one per kind of event) as one. */
export function combine(...parts: Reconciliation[]): Reconciliation {
  return {
    committed: parts.reduce((n, p) => n + p.committed, 0),
    applied: parts.reduce((n, p) => n + p.applied, 0),
    lost: parts.flatMap((p) => p.lost),
    duplicated: parts.flatMap((p) => p.duplicated),
    strays: parts.flatMap((p) => p.strays),
  };
}

/** A few ids for a failure message, and how many more there are. */
export function someIds(ids: string[], max = 5): string {
  if (ids.length === 0) return 'none';
  return ids.slice(0, max).join(', ') + (ids.length > max ? ` and ${ids.length - max} more` : '');
}
