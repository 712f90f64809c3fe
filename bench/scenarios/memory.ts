import fs from 'node:fs';
import type { BenchContext } from '../lib/context';
import { Deployment, Sampler } from '../lib/deployment';
import type { PacedFigures } from '../lib/paced';
import { BrokerProxy } from '../lib/proxy';
import type { Row, ScenarioResult } from '../lib/report';
import { fmt, mb, pollUntil } from '../lib/stats';
import { AMQP_BASE } from '../lib/system';

const MB50 = 50 * 1048576;

function dbBytes(dir: string): number {
  let total = 0;
  for (const f of ['api.sqlite', 'api.sqlite-wal']) {
    try {
      total += fs.statSync(`${dir}/${f}`).size;
    } catch {
      // no WAL right now
    }
  }
  return total;
}

/**
 * 6. Memory: API and worker RSS at start, after warm-up and after the
 * sustained run (taken by the other scenarios on the shared deployment);
 * then a broker outage at a steady write rate on a deployment of its own,
 * which reaches RabbitMQ through a proxy the benchmark cuts: the backlog
 * must pile up in the outbox on disk, not in the API's memory.
 */
export async function memory(ctx: BenchContext): Promise<ScenarioResult> {
  const rows: Row[] = [];
  const notes: string[] = [];
  const dep = await ctx.deployment();
  const snaps = dep.snapshots;
  const warm = snaps.find((s) => s.label.startsWith('before the sustained'));
  const after = snaps.find((s) => s.label.startsWith('after the sustained run,'));
  if (warm && after) {
    // Both at rest (drained, idle): RSS under load swings with V8's heap sizing, so the peak is shown, not judged.
    const peak = ctx.shared.e2eRss ?? { api: after.api, worker: after.worker };
    const growth = { api: after.api - warm.api, worker: after.worker - warm.worker };
    const signed = (b: number) => `${b >= 0 ? '+' : '−'}${mb(Math.abs(b))}`;
    rows.push({
      measure: 'RSS at rest after vs before the sustained run (API / worker)',
      warren: `${mb(after.api)} / ${mb(after.worker)}`,
      reference: `${mb(warm.api)} / ${mb(warm.worker)} before; peak under load ${mb(peak.api)} / ${mb(peak.worker)}`,
      ratio: `${signed(growth.api)} / ${signed(growth.worker)}`,
      target: 'flat within 50 MB',
      met: growth.api <= MB50 && growth.worker <= MB50,
    });
  }
  notes.push(
    "RSS of the `warren start` deployment's API and analytics worker processes (/proc VmRSS):",
    '',
    '| when | API | analytics worker |',
    '|---|---|---|',
  );
  for (const s of snaps) notes.push(`| ${s.label} | ${mb(s.api)} | ${mb(s.worker)} |`);
  if (ctx.shared.e2eRss) notes.push(`| peak during the sustained run | ${mb(ctx.shared.e2eRss.api)} | ${mb(ctx.shared.e2eRss.worker)} |`);
  notes.push(
    '',
    `The sustained run is the end-to-end scenario (${ctx.sizes.e2eSeconds} s; the issue asks for 5 minutes, which the 15-minute budget of the whole run does not allow: set BENCH_E2E_SECONDS=300 for it).`,
    '',
  );
  await ctx.closeDeployment();

  // The outage: its own deployment, through a proxy.
  const proxy = new BrokerProxy();
  const proxyPort = await proxy.start();
  const base = new URL(AMQP_BASE);
  base.port = String(proxyPort);
  const amqpUrl = `${base.toString().replace(/\/$/, '')}/${encodeURIComponent(ctx.sys.vhost)}`;
  const store = await ctx.sys.sqliteStore('outage');
  const outage = await Deployment.start(ctx.sys, store, { amqpUrl });
  const { outageRate, outageSeconds } = ctx.sizes;
  try {
    // Warm up at the same rate with the broker there, so "before" is a warmed-up process.
    await ctx.sys.runTool<PacedFigures>('pacedLoad', {
      baseUrl: outage.baseUrl,
      tokens: outage.tokens,
      rate: outageRate,
      durationSec: 5,
      maxInFlight: 256,
      firstIndex: 8_000_000,
    });
    await outage.drained(ctx.sizes.drainSeconds * 1000);
    const before = outage.rss();
    const dbBefore = dbBytes(store.dir!);
    await proxy.cut();
    const sampler = new Sampler(async () => ({ ...outage.rss(), backlog: await outage.backlog() })).start();
    const load = await ctx.sys.runTool<PacedFigures>('pacedLoad', {
      baseUrl: outage.baseUrl,
      tokens: outage.tokens,
      rate: outageRate,
      durationSec: outageSeconds,
      maxInFlight: 256,
      firstIndex: 9_000_000,
    });
    const series = sampler.stop();
    const backlog = await outage.backlog();
    const during = { api: Math.max(...series.map((s) => s.api)), worker: Math.max(...series.map((s) => s.worker)) };
    const dbDuring = dbBytes(store.dir!);
    await proxy.restore();
    const restored = Date.now();
    const relayed = await pollUntil(async () => (await outage.backlog()) === 0, ctx.sizes.drainSeconds * 1000, 250);
    const catchUp = (Date.now() - restored) / 1000;
    const afterOutage = outage.rss();
    const growth = during.api - before.api;
    rows.push({
      measure: `API RSS during a ${outageSeconds} s broker outage at ${fmt(outageRate)} tweets/s`,
      warren: `peak ${mb(during.api)} (+${mb(growth)})`,
      reference: `backlog ${fmt(backlog)} rows on disk (+${mb(dbDuring - dbBefore)} api.sqlite+wal)`,
      target: 'bounded (≤ +50 MB)',
      met: growth <= MB50 && load.accepted > 0,
    });
    rows.push({
      measure: 'outbox relayed after the outage',
      warren: relayed ? `${fmt(catchUp, 1)} s` : `not within ${ctx.sizes.drainSeconds} s`,
      reference: relayed ? `${fmt(backlog / catchUp)} rows/s incl. reconnect` : '',
      target: 'reported',
    });
    notes.push(
      `Outage: a separate \`warren start\` deployment (fresh SQLite directory) reaching RabbitMQ through a loopback TCP proxy of the benchmark's. After a 5 s warm-up at the same rate with the broker there, and with everything drained, the proxy cut every connection and refused new ones for ${outageSeconds} s while the paced load sent ${fmt(outageRate)} tweets/s; the shared broker node never stopped.`,
      `- Writes during the outage: ${fmt(load.accepted)} accepted of ${fmt(load.attempted)} (${JSON.stringify(load.statuses)}), HTTP p50 ${fmt(load.p50, 1)} ms, p99 ${fmt(load.p99, 1)} ms.`,
      `- Outbox backlog at the end of the outage: ${fmt(backlog)} rows; api.sqlite + WAL grew from ${mb(dbBefore)} to ${mb(dbDuring)}.`,
      `- API RSS: ${mb(before.api)} before, peak ${mb(during.api)} during, ${mb(afterOutage.api)} after the backlog was relayed; analytics worker: ${mb(before.worker)} before, peak ${mb(during.worker)}.`,
      `- After the proxy came back, the relay reconnected and the outbox was empty after ${fmt(catchUp, 1)} s${relayed ? '' : ' (NOT within the bound)'}.`,
      '',
      '| t (s) | outbox backlog | API RSS | worker RSS |',
      '|---|---|---|---|',
      ...series
        .filter((_, i) => i % Math.max(1, Math.round(series.length / 12)) === 0 || i === series.length - 1)
        .map((s) => `| ${fmt(s.t, 0)} | ${fmt(s.backlog)} | ${mb(s.api)} | ${mb(s.worker)} |`),
    );
  } finally {
    await outage.stop();
    await proxy.close();
  }
  return { id: 'memory', title: '6. Memory', rows, notes };
}
