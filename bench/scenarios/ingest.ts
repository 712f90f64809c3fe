import type { BenchContext } from '../lib/context';
import { Deployment } from '../lib/deployment';
import type { Row, ScenarioResult } from '../lib/report';
import { baselineBuild, freePort, pidsOf } from '../lib/system';
import { distribution, fmt, ms, pct, pollUntil } from '../lib/stats';

interface LoadFigures {
  accepted: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  durationS: number;
  rps: number;
  p50: number;
  p99: number;
  max: number;
  /** The server's CPU time (user + system) over the measured run, per accepted request. */
  cpuUsPerRequest: number;
  /** The server's CPU time over the measured run's wall time (1 = one core). */
  cpuShare: number;
  /** The server's event-loop delay (perf_hooks.monitorEventLoopDelay via prom-client) over the measured run. */
  loopDelayP99Ms: number;
  loopDelayMeanMs: number;
  /** CPU per accepted request by process: `server`, the others passed, `load` (autocannon) and `machine` (everything). */
  cpuUsPerRequestBy: Record<string, number>;
}

const CONFIRM_QUEUE = 'bench.confirm-per-request';

const us = (n: number) => `${fmt(n, 0)} µs`;

/**
 * 1. Ingest: `POST /tweets` at 50 connections (autocannon, its own process)
 * against a bare Koa handler (parse, validate, 201, no I/O) and a
 * hand-written handler doing one confirmed publish per request; Warren as
 * `warren start` runs it (relay and workers running) on SQLite, with the
 * relay's lag, then on PostgreSQL; and the previous build on SQLite when
 * BENCH_BASELINE names one. Each server's CPU per accepted request and its
 * event-loop delay are read over the measured run.
 */
export async function ingest(ctx: BenchContext): Promise<ScenarioResult> {
  const { connections, ingestSeconds, warmupSeconds } = ctx.sizes;
  const broker = pidsOf('beam.smp')[0];
  const load = (url: string, pids: Record<string, number | undefined>, tokens?: string[]) =>
    ctx.sys.runTool<LoadFigures>('ingestLoad', {
      url,
      connections,
      durationSec: ingestSeconds,
      warmupSec: warmupSeconds,
      tokens,
      pids: Object.fromEntries(Object.entries({ ...pids, rabbitmq: broker }).filter(([, pid]) => pid !== undefined)),
      metricsUrl: `${url}/metrics`,
    });

  const barePort = await freePort();
  const bareServer = await ctx.sys.startServerTool('koaCeiling', { port: barePort });
  const bare = await load(`http://127.0.0.1:${barePort}`, { server: bareServer.pid });
  await bareServer.stop();

  await ctx.sys.declareQuorumQueue(CONFIRM_QUEUE);
  const confirmPort = await freePort();
  const confirmServer = await ctx.sys.startServerTool('confirmPerRequest', { port: confirmPort, amqpUrl: ctx.sys.amqpUrl, queue: CONFIRM_QUEUE });
  const confirm = await load(`http://127.0.0.1:${confirmPort}`, { server: confirmServer.pid });
  await confirmServer.stop();
  await ctx.sys.purge(CONFIRM_QUEUE);

  const loadDeployment = async (dep: Deployment) => {
    const { api: server, worker: analytics, notifications } = dep.pids();
    if (!server) throw new Error('the deployment has no API process to measure');
    return load(dep.baseUrl, { server, analytics, notifications, supervisor: dep.supervisor.pid }, dep.tokens);
  };

  // The previous build first, on a SQLite directory of its own, so that both builds meet a fresh file.
  const baseline = baselineBuild();
  let before: LoadFigures | undefined;
  if (baseline) {
    const dep = await Deployment.start(ctx.sys, await ctx.sys.sqliteStore('ingest-baseline'), {
      cli: baseline.cli,
      amqpUrl: await ctx.sys.addVhost('ingest-baseline'),
    });
    try {
      before = await loadDeployment(dep);
    } finally {
      await dep.stop();
    }
  }

  const dep = await ctx.deployment();
  const api = dep.apiReader();
  const [{ s: seqBefore }] = (await api.all<{ s: number | null }>('SELECT max(seq) AS s FROM outbox')) as [{ s: number | null }];
  const warren = await loadDeployment(dep);
  const loadEnded = Date.now();
  const backlogAtEnd = await dep.backlog();
  await pollUntil(async () => (await dep.backlog()) === 0, ctx.sizes.drainSeconds * 1000, 50);
  const relayDrainS = (Date.now() - loadEnded) / 1000;
  const lagRows = await api.all<{ lag: number }>('SELECT sent_at - created_at AS lag FROM outbox WHERE seq > ? AND sent_at IS NOT NULL', [seqBefore ?? 0]);
  const relayLag = distribution(lagRows.map((r) => Number(r.lag)));
  ctx.shared.ingestRate = warren.rps;

  // A vhost of its own: the shared deployment's workers are still running, and would take its messages.
  const pgDep = await Deployment.start(ctx.sys, await ctx.sys.postgresStore('ingest-pg'), { amqpUrl: await ctx.sys.addVhost('ingest-pg') });
  let pg: LoadFigures;
  try {
    pg = await loadDeployment(pgDep);
  } finally {
    await pgDep.stop();
  }

  const ratio = warren.rps / bare.rps;
  const vsConfirm = warren.rps / confirm.rps;
  const was = (figure: (f: LoadFigures) => string) => (before ? `; previous build ${figure(before)}` : '');
  const line = (name: string, f: LoadFigures) =>
    `- ${name}: ${fmt(f.accepted)} accepted in ${fmt(f.durationS, 0)} s = **${fmt(f.rps)} req/s**, p50 ${ms(f.p50)}, p99 ${ms(f.p99)}, max ${ms(f.max)}; ${f.non2xx} non-2xx, ${f.errors} errors, ${f.timeouts} timeouts; ` +
    `server CPU ${us(f.cpuUsPerRequest)} per accepted request (${pct(f.cpuShare)} of a core), event-loop delay mean ${ms(f.loopDelayMeanMs)}, p99 ${ms(f.loopDelayP99Ms)}`;
  const machineLine = (name: string, f: LoadFigures) => {
    const by = f.cpuUsPerRequestBy;
    const parts = Object.entries(by)
      .filter(([k]) => k !== 'machine')
      .map(([k, v]) => `${k === 'server' ? 'server' : k} ${us(v)}`);
    return `| ${name} | ${us(by.machine ?? NaN)} | ${parts.join(', ')} |`;
  };
  const clean = (f: LoadFigures) => f.non2xx === 0 && f.errors === 0 && f.timeouts === 0;
  const rows: Row[] = [
    {
      measure: `POST /tweets req/s, ${connections} connections, SQLite`,
      warren: fmt(warren.rps),
      reference: `${fmt(bare.rps)} bare Koa${was((f) => fmt(f.rps))}`,
      ratio: pct(ratio),
      target: '≥ 30 % (goal 60 %)',
      met: ratio >= 0.3,
    },
    {
      measure: 'vs confirm-per-request handler',
      warren: fmt(warren.rps),
      reference: `${fmt(confirm.rps)} req/s, p99 ${ms(confirm.p99)}`,
      ratio: pct(vsConfirm),
      target: '≥ 100 %',
      met: vsConfirm >= 1,
    },
    {
      measure: 'POST /tweets p99, non-2xx',
      warren: `${ms(warren.p99)}, ${fmt(warren.non2xx + warren.errors + warren.timeouts)}`,
      reference: `${ms(bare.p99)} bare Koa${was((f) => ms(f.p99))}`,
      target: '≤ 25 ms, 0',
      met: warren.p99 <= 25 && clean(warren),
    },
    {
      measure: 'API CPU per accepted request',
      warren: us(warren.cpuUsPerRequest),
      reference: `${us(bare.cpuUsPerRequest)} bare Koa, ${us(confirm.cpuUsPerRequest)} confirm-per-request${was((f) => us(f.cpuUsPerRequest))}`,
      target: '≤ 120 µs',
      met: warren.cpuUsPerRequest <= 120,
    },
    {
      measure: 'API event-loop delay p99',
      warren: ms(warren.loopDelayP99Ms),
      reference: `${ms(bare.loopDelayP99Ms)} bare Koa${was((f) => ms(f.loopDelayP99Ms))}`,
      target: '≤ 5 ms',
      met: warren.loopDelayP99Ms <= 5,
    },
    {
      measure: 'PostgreSQL: req/s, p99, CPU/request, loop delay p99',
      warren: `${fmt(pg.rps)}, ${ms(pg.p99)}, ${us(pg.cpuUsPerRequest)}, ${ms(pg.loopDelayP99Ms)}`,
      reference: `${pct(pg.rps / confirm.rps)} of confirm-per-request; ${fmt(pg.non2xx + pg.errors + pg.timeouts)} non-2xx`,
      target: 'reported',
    },
    {
      measure: 'relay lag (created → confirmed)',
      warren: `p50 ${ms(relayLag.p50)}, p99 ${ms(relayLag.p99)}`,
      reference: `backlog ${fmt(backlogAtEnd)} at end, 0 after ${fmt(relayDrainS, 1)} s`,
      target: 'reported',
    },
  ];
  return {
    id: 'ingest',
    title: '1. Ingest',
    rows,
    notes: [
      `autocannon (its own process), ${connections} connections, ${warmupSeconds} s warm-up then ${ingestSeconds} s measured; each request a ~90-character tweet with a hashtag and a mention; Warren's requests rotate over ${dep.tokens.length} users' tokens.`,
      "Each server's CPU time is read from /proc/<pid>/stat at the start and end of the measured run; its event-loop delay is prom-client's `nodejs_eventloop_lag_p99_seconds` (perf_hooks.monitorEventLoopDelay, reset by a scrape at the start of the measured run).",
      line("Bare Koa ceiling (Warren's body parser, schema and text checks, 201 with the tweet; no database, no broker)", bare),
      line(
        'Hand-written confirm-per-request (the same handler + one persistent, mandatory publish on a shared confirm channel, awaited before answering)',
        confirm,
      ),
      ...(before && baseline ? [line(`Previous build (${baseline.label}), \`warren start\` on SQLite, the same load`, before)] : []),
      line(
        'Warren `POST /tweets` as `warren start` runs it on SQLite (auth lookup, group-committed tweet + outbox row with synchronous=FULL, relay and both workers running, access log at info to a file)',
        warren,
      ),
      line('The same on PostgreSQL (a fresh database, `warren start` with its relay and workers)', pg),
      '',
      "Where the machine's CPU went, per accepted request (from /proc: every process's busy time over the measured run; `load` is autocannon, `rabbitmq` the broker node, which the confirm-per-request handler uses too):",
      '',
      '| server | machine CPU per request | by process |',
      '|---|---|---|',
      machineLine('bare Koa', bare),
      machineLine('confirm-per-request', confirm),
      ...(before ? [machineLine('Warren, previous build', before)] : []),
      machineLine('Warren, SQLite', warren),
      machineLine('Warren, PostgreSQL', pg),
      '',
      `Relay lag over the SQLite run's ${fmt(relayLag.n)} outbox rows (\`sent_at − created_at\`, from the rows themselves): p50 ${ms(relayLag.p50)}, p99 ${ms(relayLag.p99)}, max ${ms(relayLag.max)}. Unsent rows when the load stopped: ${fmt(backlogAtEnd)}; all sent ${fmt(relayDrainS, 1)} s later.`,
    ],
  };
}
