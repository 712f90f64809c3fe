import fs from 'node:fs';
import path from 'node:path';
import type { BenchContext } from '../lib/context';
import { profilesIn, summarizeProfile, type ProfileSummary } from '../lib/profile';
import type { ScenarioResult } from '../lib/report';
import { freePort } from '../lib/system';
import { fmt, pct, pollUntil } from '../lib/stats';
import { signUpUsers } from '../lib/users';
import { fillWorkQueue } from '../lib/workers';
import { openReader, processedSpan } from '../lib/reader';

/**
 * Where the time goes: `warren api` under the ingest load and `warren worker
 * analytics` on a pre-filled queue, each run with `node --cpu-prof`, and the
 * profiles summarised by area (package, Warren module, GC, idle) and hottest
 * functions. Profiling slows both a little; these runs give shares, not rates.
 */
export async function profile(ctx: BenchContext): Promise<ScenarioResult> {
  const dir = path.join(ctx.sys.runDir, 'profiles');
  const apiDir = path.join(dir, 'api');
  const workerDir = path.join(dir, 'worker');
  fs.mkdirSync(apiDir, { recursive: true });
  fs.mkdirSync(workerDir, { recursive: true });
  // The shared deployment's workers would consume the queue this fills; it is closed by memory in a full run.
  await ctx.closeDeployment();
  const store = await ctx.sys.sqliteStore('profile');

  const port = await freePort();
  const api = ctx.sys.warren(['api'], store, { WARREN_HTTP_PORT: String(port) }, { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${apiDir}`] });
  await ctx.sys.waitHttp(port);
  const tokens = await signUpUsers(`http://127.0.0.1:${port}`, 10, 'prof');
  const ingest = await ctx.sys.runTool<{ rps: number; p99: number }>('ingestLoad', {
    url: `http://127.0.0.1:${port}`,
    connections: ctx.sizes.connections,
    durationSec: ctx.sizes.ingestSeconds,
    warmupSec: 0,
    tokens,
  });
  await api.stop();

  await fillWorkQueue(ctx, ctx.sizes.messages);
  const worker = ctx.sys.warren(['worker', 'analytics'], store, {}, { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${workerDir}`] });
  const reader = openReader(store, 'analytics');
  await pollUntil(async () => (await processedSpan(reader)).n >= ctx.sizes.messages, 120_000, 250);
  const span = await processedSpan(reader);
  await reader.close();
  await worker.stop();

  const summaries: { name: string; s: ProfileSummary | undefined; figure: string }[] = [
    {
      name: '`warren api` under the ingest load (relay running)',
      s: profilesIn(apiDir).map((f) => summarizeProfile(f))[0],
      figure: `${fmt(ingest.rps)} req/s while profiled`,
    },
    {
      name: '`warren worker analytics` on the pre-filled queue',
      s: profilesIn(workerDir).map((f) => summarizeProfile(f))[0],
      figure: `${fmt(span.n / ((span.last - span.first) / 1000))} msg/s while profiled`,
    },
  ];
  const notes: string[] = [];
  for (const { name, s, figure } of summaries) {
    if (!s) {
      notes.push(`- ${name}: no profile was written`);
      continue;
    }
    notes.push(`**${name}** (${figure}; ${fmt(s.seconds, 0)} s profiled, shares of all samples):`, '');
    notes.push('| area | share |', '|---|---|', ...s.byArea.map((a) => `| ${a.area} | ${pct(a.share)} |`), '');
    notes.push('| hottest functions (self time) | share |', '|---|---|', ...s.top.map((f) => `| \`${f.fn}\` | ${pct(f.share)} |`), '');
  }
  const idle = (s?: ProfileSummary) => s?.byArea.find((a) => a.area === '(idle)')?.share ?? 0;
  return {
    id: 'profile',
    title: 'Profiles (node --cpu-prof)',
    rows: [
      { measure: 'API idle share under ingest load', warren: pct(idle(summaries[0]!.s)), target: 'reported' },
      { measure: 'worker idle share while consuming', warren: pct(idle(summaries[1]!.s)), target: 'reported' },
    ],
    notes,
  };
}
