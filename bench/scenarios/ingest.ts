import type { BenchContext } from '../lib/context';
import type { ScenarioResult } from '../lib/report';
import { freePort } from '../lib/system';
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
}

const CONFIRM_QUEUE = 'bench.confirm-per-request';

/**
 * 1. Ingest: `POST /tweets` at 50 connections (autocannon, its own process)
 * against a bare Koa handler (parse, validate, 201, no I/O) and a
 * hand-written handler doing one confirmed publish per request; Warren as
 * `warren start` runs it (relay and workers running), with the relay's lag.
 */
export async function ingest(ctx: BenchContext): Promise<ScenarioResult> {
  const { connections, ingestSeconds, warmupSeconds } = ctx.sizes;
  const load = (url: string, tokens?: string[]) =>
    ctx.sys.runTool<LoadFigures>('ingestLoad', { url, connections, durationSec: ingestSeconds, warmupSec: warmupSeconds, tokens });

  const barePort = await freePort();
  const bareServer = await ctx.sys.startServerTool('koaCeiling', { port: barePort });
  const bare = await load(`http://127.0.0.1:${barePort}`);
  await bareServer.stop();

  await ctx.sys.declareQuorumQueue(CONFIRM_QUEUE);
  const confirmPort = await freePort();
  const confirmServer = await ctx.sys.startServerTool('confirmPerRequest', { port: confirmPort, amqpUrl: ctx.sys.amqpUrl, queue: CONFIRM_QUEUE });
  const confirm = await load(`http://127.0.0.1:${confirmPort}`);
  await confirmServer.stop();
  await ctx.sys.purge(CONFIRM_QUEUE);

  const dep = await ctx.deployment();
  const api = dep.apiReader();
  const [{ s: seqBefore }] = (await api.all<{ s: number | null }>('SELECT max(seq) AS s FROM outbox')) as [{ s: number | null }];
  const warren = await load(dep.baseUrl, dep.tokens);
  const loadEnded = Date.now();
  const backlogAtEnd = await dep.backlog();
  await pollUntil(async () => (await dep.backlog()) === 0, ctx.sizes.drainSeconds * 1000, 50);
  const relayDrainS = (Date.now() - loadEnded) / 1000;
  const lagRows = await api.all<{ lag: number }>('SELECT sent_at - created_at AS lag FROM outbox WHERE seq > ? AND sent_at IS NOT NULL', [seqBefore ?? 0]);
  const relayLag = distribution(lagRows.map((r) => Number(r.lag)));
  ctx.shared.ingestRate = warren.rps;

  const ratio = warren.rps / bare.rps;
  const vsConfirm = warren.rps / confirm.rps;
  const line = (name: string, f: LoadFigures) =>
    `- ${name}: ${fmt(f.accepted)} accepted in ${fmt(f.durationS, 0)} s = **${fmt(f.rps)} req/s**, p50 ${ms(f.p50)}, p99 ${ms(f.p99)}, max ${ms(f.max)}; ${f.non2xx} non-2xx, ${f.errors} errors, ${f.timeouts} timeouts`;
  return {
    id: 'ingest',
    title: '1. Ingest',
    rows: [
      { measure: `POST /tweets req/s, ${connections} connections`, warren: fmt(warren.rps), reference: `${fmt(bare.rps)} bare Koa`, ratio: pct(ratio), target: '≥ 60 %', met: ratio >= 0.6 },
      { measure: 'POST /tweets p99', warren: ms(warren.p99), reference: `${ms(bare.p99)} bare Koa`, target: '≤ 25 ms', met: warren.p99 <= 25 },
      { measure: 'vs confirm-per-request handler', warren: fmt(warren.rps), reference: `${fmt(confirm.rps)} req/s, p99 ${ms(confirm.p99)}`, ratio: pct(vsConfirm), target: '> 100 %', met: vsConfirm > 1 },
      { measure: 'relay lag (created → confirmed)', warren: `p50 ${ms(relayLag.p50)}, p99 ${ms(relayLag.p99)}`, reference: `backlog ${fmt(backlogAtEnd)} at end, 0 after ${fmt(relayDrainS, 1)} s`, target: 'reported' },
    ],
    notes: [
      `autocannon (its own process), ${connections} connections, ${warmupSeconds} s warm-up then ${ingestSeconds} s measured; each request a ~90-character tweet with a hashtag and a mention; Warren's requests rotate over ${dep.tokens.length} users' tokens.`,
      line('Bare Koa ceiling (Warren\'s body parser, schema and text checks, 201 with the tweet; no database, no broker)', bare),
      line('Hand-written confirm-per-request (the same handler + one persistent, mandatory publish on a shared confirm channel, awaited before answering)', confirm),
      line('Warren `POST /tweets` as `warren start` runs it (auth lookup, group-committed tweet + outbox row with synchronous=FULL, relay and both workers running, access log at info to a file)', warren),
      `Relay lag over the run's ${fmt(relayLag.n)} outbox rows (\`sent_at − created_at\`, from the rows themselves): p50 ${ms(relayLag.p50)}, p99 ${ms(relayLag.p99)}, max ${ms(relayLag.max)}. Unsent rows when the load stopped: ${fmt(backlogAtEnd)}; all sent ${fmt(relayDrainS, 1)} s later.`,
    ],
  };
}
