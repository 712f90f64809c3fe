import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { setMemoryAlarm } from '../../support/broker';
import { TestSystem, type WarrenProcess } from '../../support/system';
import { loadDefinitions } from '../../../src/topology/definitions';
import type { BindingInfo } from '../../../src/topology/management';
import { figuresOf, settle, type ScenarioFigures } from './books';
import { someIds } from './ledger';
import { Load, type LoadOptions } from './load';

/** Configuration every fault scenario runs with: short claims and confirms, so recovery is quick to observe. */
export const FAULT_CONFIG = {
  relay: { claimTimeoutMs: 6000, publishTimeoutMs: 5000, pollIntervalMs: 200 },
  worker: { handlerTimeoutMs: 5000 },
};

export const DEFAULT_LOAD: LoadOptions = { ratePerSecond: 150, durationMs: 10_000, profileShare: 0.2, users: 10 };

const results: ScenarioFigures[] = [];

export interface ScenarioContext {
  sys: TestSystem;
  load: Load;
  /** Processes the scenario kills or stops on purpose: their exits are not crashes. */
  expectExit(proc: WarrenProcess): void;
  sleep(ms: number): Promise<void>;
}

export interface ScenarioOptions {
  load?: Partial<LoadOptions>;
  config?: Record<string, unknown>;
  /** Starts the processes; by default the API and one worker of each kind (analytics, notifications, timeline). */
  start?(sys: TestSystem): Promise<void>;
  /** Statuses the API may answer during this fault besides 200/201 (e.g. 0 while it is down). */
  allowRefused?: number[];
  settleTimeoutMs?: number;
}

/**
 * Runs one fault scenario: a fresh, isolated Warren under a steady load, the
 * fault injected while the load runs, then the books: every committed write
 * applied exactly once, every accepted write committed, DLQs empty, no
 * process dead that was not killed on purpose.
 */
export async function runScenario(name: string, opts: ScenarioOptions, fault: (ctx: ScenarioContext) => Promise<void>): Promise<ScenarioFigures> {
  const sys = new TestSystem();
  const expected = new Set<WarrenProcess>();
  try {
    await sys.setUp({ ...FAULT_CONFIG, ...(opts.config ?? {}) });
    if (opts.start) await opts.start(sys);
    else {
      await sys.startApi();
      await sys.startWorker('analytics');
      await sys.startWorker('notifications');
      await sys.startWorker('timeline');
    }
    const loadOptions = { ...DEFAULT_LOAD, ...(opts.load ?? {}) };
    const load = new Load(sys, loadOptions);
    await load.prepare();
    load.start();
    await fault({ sys, load, expectExit: (p) => expected.add(p), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) });
    const figures = await load.finished();
    const settlement = await settle(sys, opts.settleTimeoutMs);
    const row = figuresOf(name, `${loadOptions.ratePerSecond}/s for ${loadOptions.durationMs / 1000} s`, figures, settlement);
    results.push(row);
    console.log(`      ${JSON.stringify(printable(row))}`);

    const b = settlement.books;
    expect(row.acceptedNotCommitted.length, `accepted writes never committed: ${someIds(row.acceptedNotCommitted)}`).to.equal(0);
    expect(row.lost.length, `event ids committed and never applied: ${someIds(row.lost)}`).to.equal(0);
    expect(row.duplicated.length, `event ids applied more than once: ${someIds(row.duplicated)}`).to.equal(0);
    expect(row.strays.length, `ids applied that were never committed: ${someIds(row.strays)}`).to.equal(0);
    expect(row.timeline.lost.length, `event ids committed and never applied by the timeline service: ${someIds(row.timeline.lost)}`).to.equal(0);
    expect(row.timeline.duplicated.length, `applied more than once by the timeline service: ${someIds(row.timeline.duplicated)}`).to.equal(0);
    expect(row.timeline.strays.length, `ids the timeline service applied that were never committed: ${someIds(row.timeline.strays)}`).to.equal(0);
    expect(b.outboxUnsent, 'outbox rows never relayed').to.equal(0);
    expect(b.parked, 'parked messages').to.equal(0);
    const allowed = new Set([200, 201, ...(opts.allowRefused ?? [])].map(String));
    for (const status of Object.keys(figures.refused)) expect(allowed.has(status), `unexpected answers: ${row.refused}`).to.equal(true);
    for (const proc of sys.processes) {
      if (expected.has(proc)) continue;
      expect(proc.running, `${proc.name} died unexpectedly:\n${proc.tail()}`).to.equal(true);
    }
    return row;
  } finally {
    await sys.tearDown();
  }
}

/** A row for the log: how many ids of each kind, and a few of them where there are any. */
function printable(row: ScenarioFigures): Record<string, unknown> {
  const ids = (list: string[]) => (list.length === 0 ? 0 : `${list.length} (${someIds(list, 3)})`);
  return {
    ...row,
    acceptedNotCommitted: ids(row.acceptedNotCommitted),
    lost: ids(row.lost),
    duplicated: ids(row.duplicated),
    strays: ids(row.strays),
    timeline: { applied: row.timeline.applied, lost: ids(row.timeline.lost), duplicated: ids(row.timeline.duplicated), strays: ids(row.timeline.strays) },
  };
}

/**
 * Runs `change` while the broker takes no publish: a memory alarm blocks
 * every publishing connection (what reached the broker before it is routed
 * within the grace; what comes after waits in the socket, or times out and
 * stays in the outbox). Several subscribers of one exchange are counted
 * (analytics and timeline on `tweets`, notifications and timeline on
 * `user.events`), so their bindings must go and come back at once for the
 * publishers: a publish between two changes would reach some subscribers
 * and not the others, and the books would rightly call it lost.
 */
export async function holdPublishing<T>(change: () => Promise<T>): Promise<T> {
  await setMemoryAlarm(true);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    return await change();
  } finally {
    await setMemoryAlarm(false);
  }
}

/**
 * What an operator does by mistake: deletes every route from an exchange to
 * a queue (the bindings the definitions file gives it), so that its
 * publishes are unroutable and come back: a mandatory publish returns only
 * when no queue at all is bound, and more than one service subscribes to
 * `tweets` and to `user.events`. The deletions are made while publishing is
 * held (holdPublishing), so no publish sees some routes gone and others not.
 * Returns the deleted bindings, for restoreRoutes.
 */
export async function deleteRoutes(sys: TestSystem, source: string): Promise<BindingInfo[]> {
  const queues = [
    ...new Set(
      loadDefinitions(sys.config.amqp.definitionsFile)
        .bindings.filter((b) => b.source === source && b.destination_type === 'queue')
        .map((b) => b.destination),
    ),
  ];
  if (queues.length === 0) throw new Error(`the definitions bind no queue to ${source}`);
  return holdPublishing(async () => {
    const removed: BindingInfo[] = [];
    for (const queue of queues) {
      for (const binding of (await sys.management.queueBindings(sys.vhost, queue)).filter((b) => b.source === source)) {
        await sys.management.deleteBinding(binding);
        removed.push(binding);
      }
    }
    return removed;
  });
}

/** Puts back the bindings deleteRoutes took, as an operator would, all of them while publishing is held. */
export async function restoreRoutes(sys: TestSystem, removed: readonly BindingInfo[]): Promise<void> {
  await holdPublishing(async () => {
    for (const { source, destination, destination_type, routing_key, arguments: args } of removed) {
      await sys.management.putBinding(sys.vhost, { source, destination, destination_type, routing_key, arguments: args });
    }
  });
}

/** Writes docs/RELIABILITY.md from the scenarios that ran. */
export function writeReliabilityReport(): void {
  if (results.length === 0) return;
  const file = path.resolve(__dirname, '..', '..', '..', '..', 'docs', 'RELIABILITY.md');
  const rows = results.map(
    (r) =>
      `| ${r.scenario} | ${r.load} | ${r.attempted} | ${r.accepted} | ${r.refused} | ${r.committed} | ${r.applied} | ${r.lost.length} | ${r.duplicated.length} | ${r.timeline.applied} / ${r.timeline.lost.length} / ${r.timeline.duplicated.length} | ${r.parked} | ${(r.settleMs / 1000).toFixed(1)} s |`,
  );
  const text = `# Warren under faults

Figures of the fault suite, as printed by its last run on ${new Date().toISOString().slice(0, 10)}
(${process.platform}, Node ${process.version}, RabbitMQ on localhost, SQLite unless the scenario says otherwise).
Reproduce with:

\`\`\`sh
npm run test:faults
\`\`\`

Each scenario runs a fresh Warren (its own vhost, database and port, the real
\`warren api\` and \`warren worker\` processes) under a steady load of HTTP
writes (80 % tweets, 20 % profile changes), injects the fault while the load
runs, then waits for the system to settle and checks the books.

The books are kept by message id, not by totals (one lost message and one
applied twice would net to nothing): every tweet of the load carries a
hashtag of its own, so analytics' count of that tag is the number of times
its effect was applied; a profile change's notification names its message id.
The timeline service is counted against the same ids on its own: a tweet is
applied when its author's home timeline holds it, a profile change (which
renames nobody, so changes no timeline) when its inbox record is there, and
since its store keeps each (user, tweet) once, a tweet applied twice would
show as a timeline whose kept size counts more entries than it holds.

- **accepted**: writes the API answered 201/200; **refused**: other answers by status ("no answer" while the API was down);
- **committed**: event ids in the outbox; every accepted write is among them, checked write by write (tweet id, new display name); a write whose answer was lost when a process died may be committed without being accepted;
- **applied**: committed ids whose effect was applied (the tweet's tag counted by analytics, the profile change's notification created);
- **lost** = ids committed but never applied; **duplicated** = ids applied more than once (each counted once, however often); the suite also fails on an id applied that was never committed; these three columns are analytics and notifications;
- **timeline** = applied / lost / duplicated for the timeline service, against the same committed ids (duplicated includes timelines that count an entry twice); **parked** = messages in the DLQs of all three;
- **settle**: from the end of the load until every committed event was applied.

| scenario | load | attempted | accepted | refused | committed | applied | lost | duplicated | timeline | parked | settle |
|---|---|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Readiness during these faults: the API's \`/readyz\` stays 200 (status
\`degraded\`, the broker reported down in its body) while the broker is
stopped, absent at start-up or under a memory alarm, since the outbox takes
the writes; it is 503 only when the API cannot take writes (outbox past
\`outbox.maxBacklog\`, the database gone or its writer failing) and for
\`http.drainDelayMs\` after SIGTERM. The scenarios run with
\`relay.claimTimeoutMs\` 6000 above \`relay.publishTimeoutMs\` 5000, and relay
claims are judged by the database's clock. The route scenarios delete (and
put back) every binding of an exchange while a memory alarm holds the
publishers for a moment: two counted services subscribe to each exchange,
and a publish between two deletions would reach one and not the other.
`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}
