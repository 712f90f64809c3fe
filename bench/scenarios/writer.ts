import type { BenchContext } from '../lib/context';
import { cpuSeconds } from '../lib/procCpu';
import type { Row, ScenarioResult } from '../lib/report';
import { freePort, pidsOf } from '../lib/system';
import { fmt, ms, pct } from '../lib/stats';
import { signUpUsers } from '../lib/users';

/** What ingestLoad prints (see bench/tools/ingestLoad.ts). */
interface LoadFigures {
  accepted: number;
  non2xx: number;
  rps: number;
  p99: number;
  cpuUsPerRequest: number;
  loopDelayP99Ms: number;
}

/** What pacedLoad prints (see bench/tools/pacedLoad.ts). */
interface PacedFigures {
  accepted: number;
  attempted: number;
  achievedRate: number;
  p50: number;
  p99: number;
}

interface Round {
  closed: LoadFigures;
  paced: PacedFigures & { cpuUsPerRequest: number };
}

const WRITERS = [
  { id: 'sqlite3', label: 'node-sqlite3 writer (`database.sqliteDriver: sqlite3`)', env: { WARREN_DATABASE_SQLITE_DRIVER: 'sqlite3' } },
  { id: 'thread', label: 'better-sqlite3 on the writer thread (default `auto`)', env: {} },
] as const;

const ROUNDS = 3;
const us = (n: number) => `${fmt(n, 0)} µs`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * The API's writer alone: `warren api` (its relay publishing, no workers)
 * on a fresh SQLite directory, with node-sqlite3 as the writer and with
 * better-sqlite3 on a thread of its own, in alternating rounds (A B, B A,
 * A B) so that a machine that changes speed halfway favours neither. Each
 * round measures the closed loop (50 connections, req/s, CPU per request,
 * event-loop delay) and then a paced load at a rate both sustain (200/s), where
 * batches are the same size for both and CPU per request compares like
 * with like.
 */
export async function writer(ctx: BenchContext): Promise<ScenarioResult> {
  const broker = pidsOf('beam.smp')[0];
  const rounds = new Map<string, Round[]>(WRITERS.map((w) => [w.id, []]));
  // A rate both writers sustain even on a busy machine, so that batches are alike and CPU per request compares like with like.
  const pacedRate = Number(process.env.BENCH_WRITER_RATE) > 0 ? Number(process.env.BENCH_WRITER_RATE) : 200;
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? WRITERS : [...WRITERS].reverse();
    for (const w of order) {
      ctx.log(`writer: round ${round + 1}, ${w.id}`);
      const store = await ctx.sys.sqliteStore(`writer-${w.id}-${round}`, w.env);
      const port = await freePort();
      const api = ctx.sys.warren(['api'], store, { WARREN_HTTP_PORT: String(port) });
      try {
        await ctx.sys.waitHttp(port);
        const url = `http://127.0.0.1:${port}`;
        const tokens = await signUpUsers(url, 10, `writer_${round}`);
        const closed = await ctx.sys.runTool<LoadFigures>('ingestLoad', {
          url,
          connections: ctx.sizes.connections,
          durationSec: ctx.sizes.ingestSeconds,
          warmupSec: ctx.sizes.warmupSeconds,
          tokens,
          pids: { server: api.pid, ...(broker ? { rabbitmq: broker } : {}) },
          metricsUrl: `${url}/metrics`,
        });
        const cpuBefore = cpuSeconds(api.pid);
        const paced = await ctx.sys.runTool<PacedFigures>('pacedLoad', {
          baseUrl: url,
          tokens,
          rate: pacedRate,
          durationSec: ctx.sizes.ingestSeconds,
          maxInFlight: 200,
          firstIndex: 1_000_000,
        });
        const cpuUsPerRequest = ((cpuSeconds(api.pid) - cpuBefore) * 1e6) / Math.max(1, paced.accepted);
        rounds.get(w.id)!.push({ closed, paced: { ...paced, cpuUsPerRequest } });
      } finally {
        await api.stop();
      }
    }
  }

  const summary = WRITERS.map((w) => {
    const rs = rounds.get(w.id)!;
    return {
      w,
      rps: median(rs.map((r) => r.closed.rps)),
      closedCpu: median(rs.map((r) => r.closed.cpuUsPerRequest)),
      loopP99: median(rs.map((r) => r.closed.loopDelayP99Ms)),
      closedP99: median(rs.map((r) => r.closed.p99)),
      pacedCpu: median(rs.map((r) => r.paced.cpuUsPerRequest)),
      pacedP50: median(rs.map((r) => r.paced.p50)),
      pacedP99: median(rs.map((r) => r.paced.p99)),
      non2xx: rs.reduce((n, r) => n + r.closed.non2xx + (r.paced.attempted - r.paced.accepted), 0),
    };
  });
  const [old, thread] = summary as [(typeof summary)[0], (typeof summary)[0]];
  const rows: Row[] = [
    {
      measure: `\`warren api\` alone, ${ctx.sizes.connections} connections: req/s`,
      warren: fmt(thread.rps),
      reference: `${fmt(old.rps)} node-sqlite3 writer`,
      ratio: `${fmt(thread.rps / old.rps, 2)}×`,
      target: 'reported',
    },
    {
      measure: 'API CPU per accepted request, closed loop / paced',
      warren: `${us(thread.closedCpu)} / ${us(thread.pacedCpu)}`,
      reference: `${us(old.closedCpu)} / ${us(old.pacedCpu)} node-sqlite3 writer`,
      ratio: `${fmt(thread.pacedCpu / old.pacedCpu, 2)}× paced`,
      target: 'reported',
    },
    {
      measure: `event-loop delay p99 (closed loop); latency p50/p99 at ${fmt(pacedRate)}/s`,
      warren: `${ms(thread.loopP99)}; ${ms(thread.pacedP50)} / ${ms(thread.pacedP99)}`,
      reference: `${ms(old.loopP99)}; ${ms(old.pacedP50)} / ${ms(old.pacedP99)} node-sqlite3 writer`,
      target: 'reported',
    },
  ];
  const notes = [
    `\`warren api\` alone (relay publishing to the broker, no workers) on a fresh SQLite directory per round, ${ROUNDS} rounds in alternating order; medians of the rounds. Closed loop: autocannon at ${ctx.sizes.connections} connections for ${ctx.sizes.ingestSeconds} s after ${ctx.sizes.warmupSeconds} s of warm-up. Paced: ${fmt(pacedRate)} tweets/s for ${ctx.sizes.ingestSeconds} s (BENCH_WRITER_RATE), the API's CPU from /proc over the run, writer thread included.`,
    '',
    '| writer | round | closed req/s | closed p99 | CPU/request closed | loop delay p99 | paced CPU/request | paced p50 / p99 |',
    '|---|---|---|---|---|---|---|---|',
    ...WRITERS.flatMap((w) =>
      rounds
        .get(w.id)!
        .map(
          (r, i) =>
            `| ${w.label} | ${i + 1} | ${fmt(r.closed.rps)} | ${ms(r.closed.p99)} | ${us(r.closed.cpuUsPerRequest)} | ${ms(r.closed.loopDelayP99Ms)} | ${us(r.paced.cpuUsPerRequest)} | ${ms(r.paced.p50)} / ${ms(r.paced.p99)} |`,
        ),
    ),
    '',
    `Requests not answered 201 over all rounds: ${summary.map((s) => `${s.w.id} ${s.non2xx}`).join(', ')}. Paced share of a core: ${pct((thread.pacedCpu * pacedRate) / 1e6)} (thread) against ${pct((old.pacedCpu * pacedRate) / 1e6)} (node-sqlite3).`,
  ];
  return { id: 'writer', title: "The API's writer: node-sqlite3 against better-sqlite3 on a thread", rows, notes };
}
