import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/services';
import type { BenchContext, Sizes } from './lib/context';
import { Deployment } from './lib/deployment';
import { describeMachine } from './lib/machine';
import { consoleTable, writeReport, type ScenarioResult } from './lib/report';
import { baselineBuild, BenchSystem, MANAGEMENT_URL } from './lib/system';
import { fmt } from './lib/stats';
import { consoleSearch } from './scenarios/consoleSearch';
import { consume } from './scenarios/consume';
import { endToEnd } from './scenarios/endToEnd';
import { ingest } from './scenarios/ingest';
import { memory } from './scenarios/memory';
import { profile } from './scenarios/profile';
import { protocols } from './scenarios/protocols';
import { quiet } from './scenarios/quiet';
import { relay } from './scenarios/relay';
import { relays } from './scenarios/relays';
import { scale } from './scenarios/scale';
import { steady } from './scenarios/steady';
import { writer } from './scenarios/writer';

/**
 * `npm run bench`: starts what it needs (an isolated vhost, fresh SQLite
 * directories and PostgreSQL databases, real `warren` processes), runs every
 * scenario with its ceiling or peer in the same run, prints the table and
 * writes docs/BENCHMARKS.md.
 *
 *   --only relay,consume   run only these scenarios (the report is not written)
 *   --skip profile         leave these out
 *   --no-write             print, do not write docs/BENCHMARKS.md
 * Sizes: BENCH_MESSAGES, BENCH_E2E_RATE, BENCH_E2E_SECONDS, BENCH_INGEST_SECONDS, ... (see sizesFromEnv).
 */
const SCENARIOS: { id: string; run: (ctx: BenchContext) => Promise<ScenarioResult> }[] = [
  // Broker-bound first, each on processes and stores of its own.
  { id: 'relay', run: relay },
  { id: 'consume', run: consume },
  { id: 'steady', run: steady },
  { id: 'scale', run: scale },
  { id: 'relays', run: relays },
  // Then the `warren start` deployment, in the order its memory story needs: start, warm-up (ingest), quiet, sustained.
  // The API's writer alone, each SQLite writer in turn; then the shared deployment.
  { id: 'writer', run: writer },
  { id: 'ingest', run: ingest },
  { id: 'quiet', run: quiet },
  { id: 'e2e', run: endToEnd },
  { id: 'memory', run: memory },
  { id: 'profile', run: profile },
  // The timeline call over REST and gRPC, on a deployment of its own.
  { id: 'protocols', run: protocols },
  // Needs no broker: the console's index in a database of its own.
  { id: 'console-search', run: consoleSearch },
];

const WHOLE_RUN_LIMIT_MS = 20 * 60_000;

function num(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

function sizesFromEnv(): Sizes {
  return {
    messages: num('BENCH_MESSAGES', 20_000),
    outstanding: num('BENCH_OUTSTANDING', 500),
    connections: num('BENCH_CONNECTIONS', 50),
    ingestSeconds: num('BENCH_INGEST_SECONDS', 10),
    warmupSeconds: num('BENCH_WARMUP_SECONDS', 3),
    e2eRate: num('BENCH_E2E_RATE', 2000),
    e2eSeconds: num('BENCH_E2E_SECONDS', 60),
    quietRate: num('BENCH_QUIET_RATE', 10),
    quietSeconds: num('BENCH_QUIET_SECONDS', 20),
    outageRate: num('BENCH_OUTAGE_RATE', 1000),
    outageSeconds: num('BENCH_OUTAGE_SECONDS', 60),
    drainSeconds: num('BENCH_DRAIN_SECONDS', 90),
    protocolSeconds: num('BENCH_PROTOCOL_SECONDS', 8),
  };
}

function argList(flag: string): string[] | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? (process.argv[i + 1] ?? '').split(',').filter(Boolean) : undefined;
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const t0 = Date.now();
  const only = argList('--only');
  const skip = argList('--skip') ?? [];
  const write = !process.argv.includes('--no-write') && !only;
  const chosen = SCENARIOS.filter((s) => (!only || only.includes(s.id)) && !skip.includes(s.id));
  const sizes = sizesFromEnv();
  const log = (line: string) => process.stderr.write(`[bench ${fmt((Date.now() - t0) / 1000, 0).padStart(4)} s] ${line}\n`);

  const machine = await describeMachine(MANAGEMENT_URL);
  const sys = new BenchSystem();
  await sys.setUp();
  log(`vhost ${sys.vhost}, run directory ${sys.runDir}; ${machine.cpus} × ${machine.cpuModel}, load ${machine.loadAtStart}`);
  const watchdog = setTimeout(() => {
    log(`the whole run passed ${WHOLE_RUN_LIMIT_MS / 60_000} minutes: stopping`);
    void sys.tearDown(true).finally(() => process.exit(1));
  }, WHOLE_RUN_LIMIT_MS);
  watchdog.unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void sys.tearDown(true).finally(() => process.exit(130)));
  }

  let deployment: Deployment | undefined;
  let baselineDeployment: { dep: Deployment; label: string } | undefined;
  const baseline = baselineBuild();
  const ctx: BenchContext = {
    sys,
    sizes,
    prefetch: loadConfig(sys.baseEnv({})).worker.prefetch,
    shared: {},
    log,
    async deployment() {
      if (!deployment) {
        log('starting `warren start` (fresh SQLite directory)');
        deployment = await Deployment.start(sys, await sys.sqliteStore('deployed'));
        // RSS "at start": up, ready, users created, nothing else done yet.
        deployment.snapshot('at start (ready, idle)');
      }
      return deployment;
    },
    async closeDeployment() {
      await deployment?.stop();
      deployment = undefined;
    },
    async baselineDeployment() {
      if (!baseline) return undefined;
      if (!baselineDeployment) {
        log(`starting the previous build's \`warren start\` (${baseline.label}, fresh SQLite directory)`);
        // A vhost of its own: beside the shared deployment, their workers would otherwise share the work queues.
        const amqpUrl = await sys.addVhost('baseline');
        baselineDeployment = {
          dep: await Deployment.start(sys, await sys.sqliteStore('deployed-baseline'), { cli: baseline.cli, amqpUrl }),
          label: baseline.label,
        };
      }
      return baselineDeployment;
    },
    async closeBaselineDeployment() {
      await baselineDeployment?.dep.stop();
      baselineDeployment = undefined;
    },
  };

  const results: ScenarioResult[] = [];
  try {
    for (const s of chosen) {
      log(`${s.id}: running`);
      const started = Date.now();
      try {
        const r = await s.run(ctx);
        r.seconds = (Date.now() - started) / 1000;
        results.push(r);
        log(`${s.id}: done in ${fmt(r.seconds, 0)} s\n${consoleTable([r])}`);
      } catch (err) {
        const message = (err as Error).stack ?? String(err);
        log(`${s.id}: FAILED: ${message}`);
        results.push({
          id: s.id,
          title: s.id,
          rows: [{ measure: 'scenario failed', warren: (err as Error).message.split('\n')[0]!.slice(0, 120), met: false }],
          notes: ['```', message.slice(0, 3000), '```'],
          seconds: (Date.now() - started) / 1000,
        });
      }
    }
  } finally {
    await ctx.closeDeployment().catch(() => undefined);
    await ctx.closeBaselineDeployment().catch(() => undefined);
    await sys.tearDown(process.env.BENCH_KEEP === '1');
  }
  const totalSeconds = (Date.now() - t0) / 1000;
  process.stdout.write(`\n${consoleTable(results)}\n\nwhole run: ${fmt(totalSeconds, 0)} s\n`);
  // A partial run writes no report: its notes (how each figure was made, the breakdowns) go to the terminal instead.
  if (!write) for (const r of results) process.stdout.write(`\n## ${r.title}\n\n${r.notes.join('\n')}\n`);
  if (write) {
    const file = path.resolve(__dirname, '..', '..', 'docs', 'BENCHMARKS.md');
    writeReport(file, {
      results,
      machine,
      command: 'npm run bench',
      startedAt,
      totalSeconds,
      sizes: [
        `Relay, consume and scale: ${fmt(sizes.messages)} messages per run. The issue's 100k would take the whole run past 15 minutes on this machine: at the ${fmt(ctx.shared.consumeRate?.sqlite ?? NaN)} msg/s measured here, one Warren consume run of 100k takes ${fmt(100_000 / (ctx.shared.consumeRate?.sqlite ?? NaN))} s, and the run has six of them plus the BullMQ peer. \`BENCH_MESSAGES=100000 npm run bench\` runs it.`,
        `Ingest: ${sizes.connections} connections, ${sizes.warmupSeconds} s warm-up + ${sizes.ingestSeconds} s measured, per target.`,
        `End to end: ${fmt(sizes.e2eRate)} tweets/s for ${sizes.e2eSeconds} s; quiet: ${sizes.quietRate} tweets/s for ${sizes.quietSeconds} s; outage: ${fmt(sizes.outageRate)} tweets/s for ${sizes.outageSeconds} s; a backlog is waited for at most ${sizes.drainSeconds} s.`,
      ],
      method: [
        'Everything runs on this one machine over loopback: RabbitMQ, PostgreSQL, Redis, Warren, the load generators. Each load generator is its own process (autocannon for closed-loop ingest, a paced open-loop client for fixed rates), bounded in count and time.',
        'Warren runs as deployed: `warren start` (API with its outbox relay, analytics and notifications workers) or the single `warren api` / `warren worker analytics` command a scenario needs, default configuration (SQLite WAL with synchronous=FULL, prefetch ' +
          `${ctx.prefetch}, logs at info to files), in a vhost of its own with the topology of rabbitmq/definitions.json and a fresh database per run.`,
        "Lag 201 → counted: the analytics worker writes its inbox record in the same transaction as the counts, so the benchmark polls the analytics SQLite file read-only for new inbox rows (by rowid) every few milliseconds and matches them to the tweets through the API's outbox. A poll costs a fraction of a millisecond (given with each figure); a lag is overstated by at most one poll period plus one poll.",
        "Rates of Warren's relay and workers come from timestamps Warren writes itself (outbox `sent_at`, inbox `processed_at`), so process start-up is never counted, and the benchmark adds nothing to their hot path.",
        `Other processes on the machine are not stopped; the load average at the start of this run was ${machine.loadAtStart} (${os.cpus().length} CPUs).`,
      ],
      findings: findings(results),
    });
    log(`wrote ${file}`);
  }
  clearTimeout(watchdog);
}

/** Findings are written by hand into docs after a run; the generated page keeps the slot with what the run itself can say. */
function findings(results: ScenarioResult[]): string[] {
  const missed = results.flatMap((r) => r.rows.filter((row) => row.met === false).map((row) => `${r.title}: ${row.measure}`));
  return missed.length
    ? [`Targets missed in this run: ${missed.join('; ')}. See each scenario's notes and the profiles below.`]
    : ['Every target was met in this run.'];
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
