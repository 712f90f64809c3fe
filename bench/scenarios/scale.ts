import type { BenchContext } from '../lib/context';
import type { Row, ScenarioResult } from '../lib/report';
import type { Store } from '../lib/system';
import { fmt } from '../lib/stats';
import { timeAnalyticsWorker } from '../lib/workers';

/**
 * 5. Scale: one versus two analytics worker processes (`--processes 2`,
 * competing consumers) on the same pre-filled queue, PostgreSQL and SQLite.
 * The one-process figure is the consume scenario's when it ran (same size,
 * same configuration, fresh database), else measured here.
 */
export async function scale(ctx: BenchContext): Promise<ScenarioResult> {
  const rows: Row[] = [];
  const notes: string[] = [
    `Each run: queue pre-filled with ${fmt(ctx.sizes.messages)} messages, a fresh migrated database, timed from the first inbox record to the last. Two processes are \`warren worker analytics --processes 2\` (the supervisor runs two competing consumers, prefetch ${ctx.prefetch} each).`,
  ];
  const kinds: { kind: 'postgres' | 'sqlite'; name: string; target: boolean }[] = [
    { kind: 'postgres', name: 'PostgreSQL', target: true },
    { kind: 'sqlite', name: 'SQLite (default driver)', target: false },
  ];
  for (const { kind, name, target } of kinds) {
    const store = (label: string): Promise<Store> => (kind === 'postgres' ? ctx.sys.postgresStore(label) : ctx.sys.sqliteStore(label));
    let one = ctx.shared.consumeRate?.[kind];
    let oneFrom = 'the consume scenario';
    if (one === undefined) {
      one = (await timeAnalyticsWorker(ctx, await store(`scale-${kind}-1`), 1)).rate;
      oneFrom = 'this scenario';
    }
    const two = await timeAnalyticsWorker(ctx, await store(`scale-${kind}-2`), 2);
    const ratio = two.rate / one;
    rows.push({
      measure: `2 vs 1 worker processes, ${name}`,
      warren: `${fmt(two.rate)} msg/s`,
      reference: `${fmt(one)} msg/s with 1`,
      ratio: `${fmt(ratio, 2)}×`,
      target: target ? '≥ 1.6×' : 'reported',
      met: target ? ratio >= 1.6 : undefined,
    });
    notes.push(
      `- ${name}: one process ${fmt(one)} msg/s (from ${oneFrom}); two processes ${fmt(two.count)} messages in ${fmt(two.seconds, 1)} s = ${fmt(two.rate)} msg/s, parked ${two.parked}${two.complete ? '' : ' (INCOMPLETE within the bound)'}.`,
    );
  }
  notes.push(
    'On 2 cores the broker, the database server and the load share the same CPUs as the workers, so a second process competes with them as much as it adds.',
  );
  return { id: 'scale', title: '5. Scale', rows, notes };
}
