/** @file The timeline call over REST against gRPC: the API's GET /users/:id/timeline at 50 connections, and the client's call alone, interleaved in one run. */
import type { BenchContext } from '../lib/context';
import { Deployment } from '../lib/deployment';
import type { Row, ScenarioResult } from '../lib/report';
import { childPids, freePort, type Proc } from '../lib/system';
import { fmt, ms, pct, pollUntil } from '../lib/stats';

type Protocol = 'rest' | 'grpc';

interface CallFigures {
  calls: number;
  failed: number;
  durationS: number;
  rps: number;
  p50: number;
  p99: number;
  max: number;
  /** CPU time per answered call by process (`api` or `client`, `timeline`, `machine`). */
  cpuUsPerCallBy: Record<string, number>;
}

const PROTOCOLS: readonly Protocol[] = ['rest', 'grpc'];
const NAME: Record<Protocol, string> = { rest: 'REST', grpc: 'gRPC' };
const USERS = 30;
const FOLLOWS_EACH = 10;
const TWEETS_EACH = 4;

const us = (n: number) => `${fmt(n, 0)} µs`;

/** Rounds of one protocol as one figure: rates over the summed time, latencies and CPU as the rounds' means weighted by calls. */
function combine(rounds: CallFigures[]): CallFigures {
  const calls = rounds.reduce((n, r) => n + r.calls, 0);
  const weighted = (f: (r: CallFigures) => number) => rounds.reduce((n, r) => n + f(r) * r.calls, 0) / calls;
  const keys = Object.keys(rounds[0]!.cpuUsPerCallBy);
  return {
    calls,
    failed: rounds.reduce((n, r) => n + r.failed, 0),
    durationS: rounds.reduce((n, r) => n + r.durationS, 0),
    rps: calls / rounds.reduce((n, r) => n + r.durationS, 0),
    p50: weighted((r) => r.p50),
    p99: weighted((r) => r.p99),
    max: Math.max(...rounds.map((r) => r.max)),
    cpuUsPerCallBy: Object.fromEntries(keys.map((k) => [k, weighted((r) => r.cpuUsPerCallBy[k]!)])),
  };
}

/**
 * 8. Protocols: one `warren start` (SQLite, a vhost of its own) whose
 * timeline service serves REST on its port and gRPC on its gRPC port, and
 * two more `warren api` processes on the same store, one calling it over
 * REST and one over gRPC. 30 users, each following 10 others, 4 tweets
 * each, so every home timeline holds more than a page. Then, in turn
 * (REST, gRPC, REST, gRPC): autocannon at `connections` connections on
 * `GET /users/:id/timeline` (the API checks the user, then calls the
 * timeline service), and the API's TimelineClient alone in a process of its
 * own at the same concurrency (the raw call). Each process's CPU per
 * answered call from /proc.
 */
export async function protocols(ctx: BenchContext): Promise<ScenarioResult> {
  const { connections, warmupSeconds, protocolSeconds: seconds } = ctx.sizes;
  const rounds = 2;
  const [timelinePort, grpcPort] = [await freePort(), await freePort()];
  const amqpUrl = await ctx.sys.addVhost('protocols');
  const store = await ctx.sys.sqliteStore('protocols');
  const dep = await Deployment.start(ctx.sys, store, {
    amqpUrl,
    users: 0,
    extraEnv: { WARREN_TIMELINE_PORT: String(timelinePort), WARREN_TIMELINE_GRPC_PORT: String(grpcPort) },
  });
  const apis: Proc[] = [];
  try {
    const timelinePid = childPids(dep.supervisor.pid, 'cli.js worker timeline')[0];
    if (!timelinePid) throw new Error('the deployment has no timeline process to measure');
    const urls: Record<Protocol, string> = { rest: `http://127.0.0.1:${timelinePort}`, grpc: `http://127.0.0.1:${grpcPort}` };

    // The follow graph and the tweets, through the API like any client.
    const users: { id: string; token: string }[] = [];
    const call = async (method: string, path: string, token?: string, body?: unknown) => {
      const res = await fetch(`${dep.baseUrl}${path}`, {
        method,
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      if (res.status >= 300) throw new Error(`${method} ${path} answered ${res.status}: ${await res.text()}`);
      return res.status === 204 ? undefined : ((await res.json()) as unknown);
    };
    for (let i = 0; i < USERS; i++) {
      const made = (await call('POST', '/users', undefined, { handle: `proto_${i}`, displayName: `Protocols ${i}` })) as {
        user: { id: string };
        token: string;
      };
      users.push({ id: made.user.id, token: made.token });
    }
    for (const [i, u] of users.entries()) {
      for (let k = 1; k <= FOLLOWS_EACH; k++) await call('PUT', `/users/${u.id}/following/${users[(i + k) % USERS]!.id}`, u.token);
    }
    for (let t = 0; t < TWEETS_EACH; t++) for (const u of users) await call('POST', '/tweets', u.token, { text: `timeline read ${t} from #Warren` });
    const expected = TWEETS_EACH * (FOLLOWS_EACH + 1);
    const filled = await pollUntil(
      async () => {
        for (const u of users) {
          const page = (await (await fetch(`${urls.rest}/timelines/${u.id}?limit=100`)).json()) as { items: unknown[] };
          if (page.items.length < expected) return false;
        }
        return true;
      },
      60_000,
      250,
    );
    if (!filled) throw new Error(`the timelines did not fill (${expected} entries each) within 60 s`);
    const userIds = users.map((u) => u.id);

    // One API per protocol, beside the deployment's own (idle here), on the same store and timeline instance.
    const apiPort: Record<Protocol, number> = { rest: await freePort(), grpc: await freePort() };
    const apiPid: Partial<Record<Protocol, number>> = {};
    for (const protocol of PROTOCOLS) {
      const api = ctx.sys.warren(
        ['api'],
        store,
        {
          WARREN_HTTP_PORT: String(apiPort[protocol]),
          WARREN_TIMELINE_PROTOCOL: protocol,
          WARREN_TIMELINE_URLS: urls.rest,
          WARREN_TIMELINE_GRPC_URLS: urls.grpc,
          WARREN_CONSOLE_PORT: String(await freePort()),
        },
        { amqpUrl },
      );
      apis.push(api);
      apiPid[protocol] = api.pid;
      await ctx.sys.waitHttp(apiPort[protocol], 60_000);
      const probe = await fetch(`http://127.0.0.1:${apiPort[protocol]}/users/${userIds[0]}/timeline`);
      if (probe.status !== 200) throw new Error(`the ${protocol} API answered ${probe.status} to a timeline read`);
    }

    const outer: Record<Protocol, CallFigures[]> = { rest: [], grpc: [] };
    const raw: Record<Protocol, CallFigures[]> = { rest: [], grpc: [] };
    for (let r = 0; r < rounds; r++) {
      for (const protocol of PROTOCOLS) {
        ctx.log(`protocols: round ${r + 1}, GET /users/:id/timeline with the API calling over ${protocol}`);
        outer[protocol].push(
          await ctx.sys.runTool<CallFigures>('timelineLoad', {
            url: `http://127.0.0.1:${apiPort[protocol]}`,
            userIds,
            connections,
            durationSec: seconds,
            warmupSec: warmupSeconds,
            pids: { api: apiPid[protocol]!, timeline: timelinePid },
          }),
        );
      }
    }
    for (let r = 0; r < rounds; r++) {
      for (const protocol of PROTOCOLS) {
        ctx.log(`protocols: round ${r + 1}, the raw call over ${protocol}`);
        raw[protocol].push(
          await ctx.sys.runTool<CallFigures>('timelineRawCall', {
            protocol,
            url: urls[protocol],
            userIds,
            concurrency: connections,
            durationSec: seconds,
            warmupSec: warmupSeconds,
            deadlineMs: 2000,
            pids: { timeline: timelinePid },
          }),
        );
      }
    }

    const o = { rest: combine(outer.rest), grpc: combine(outer.grpc) };
    const w = { rest: combine(raw.rest), grpc: combine(raw.grpc) };
    const gain = o.grpc.rps / o.rest.rps - 1;
    const both = (f: CallFigures) => (f.cpuUsPerCallBy.api ?? NaN) + (f.cpuUsPerCallBy.timeline ?? NaN);
    const rawBoth = (f: CallFigures) => (f.cpuUsPerCallBy.client ?? NaN) + (f.cpuUsPerCallBy.timeline ?? NaN);
    const pair = (f: (x: CallFigures) => string, figs: Record<Protocol, CallFigures>) => ({
      warren: `gRPC ${f(figs.grpc)}`,
      reference: `REST ${f(figs.rest)}`,
    });
    const rows: Row[] = [
      {
        measure: `GET /users/:id/timeline req/s, ${connections} connections`,
        ...pair((f) => fmt(f.rps), o),
        ratio: pct(o.grpc.rps / o.rest.rps),
        target: 'gRPC the default only at ≥ 130 %',
        met: gain >= 0.3,
      },
      { measure: 'GET /users/:id/timeline p50 / p99', ...pair((f) => `${ms(f.p50)} / ${ms(f.p99)}`, o), target: 'reported' },
      {
        measure: 'CPU per read: API + timeline service',
        ...pair((f) => `${us(f.cpuUsPerCallBy.api!)} + ${us(f.cpuUsPerCallBy.timeline!)} = ${us(both(f))}`, o),
        ratio: pct(both(o.grpc) / both(o.rest)),
        target: 'reported',
      },
      { measure: 'failed reads (non-200, errors, timeouts)', ...pair((f) => fmt(f.failed), o), target: '0', met: o.rest.failed + o.grpc.failed === 0 },
      {
        measure: `raw call (client alone) calls/s, ${connections} in flight`,
        ...pair((f) => fmt(f.rps), w),
        ratio: pct(w.grpc.rps / w.rest.rps),
        target: 'reported',
      },
      { measure: 'raw call p50 / p99', ...pair((f) => `${ms(f.p50)} / ${ms(f.p99)}`, w), target: 'reported' },
      {
        measure: 'raw call CPU: client + timeline service',
        ...pair((f) => `${us(f.cpuUsPerCallBy.client!)} + ${us(f.cpuUsPerCallBy.timeline!)} = ${us(rawBoth(f))}`, w),
        ratio: pct(rawBoth(w.grpc) / rawBoth(w.rest)),
        target: 'reported',
      },
    ];
    const roundLine = (kind: string, protocol: Protocol, f: CallFigures, i: number) =>
      `| ${kind} | ${i + 1} | ${NAME[protocol]} | ${fmt(f.calls)} in ${fmt(f.durationS, 1)} s = ${fmt(f.rps)}/s | ${ms(f.p50)} / ${ms(f.p99)} / ${ms(f.max)} | ${Object.entries(
        f.cpuUsPerCallBy,
      )
        .map(([k, v]) => `${k} ${us(v)}`)
        .join(', ')} | ${fmt(f.failed)} |`;
    return {
      id: 'protocols',
      title: '8. Protocols (timeline call)',
      rows,
      notes: [
        `One \`warren start\` on SQLite; its timeline service serves REST on one port and gRPC (proto/timeline.proto) on another; two more \`warren api\` processes on the same store call it, one with \`timeline.protocol: rest\` (undici pool, 32 connections) and one with \`grpc\` (one HTTP/2 channel). ${USERS} users, each following ${FOLLOWS_EACH}, ${TWEETS_EACH} tweets each: every timeline read is a full page of 20.`,
        `Rounds in turn, REST then gRPC, ${rounds} of each: autocannon (its own process) at ${connections} connections, ${warmupSeconds} s warm-up then ${seconds} s measured, the user rotating over the ${USERS}; then the raw call the same way (the API's TimelineClient in a process of its own, ${connections} calls in flight, no outer HTTP request). CPU per answered call from /proc/<pid>/stat over each measured run (\`machine\`: every process on the machine, the load generator and the other API included); the figures above weight the rounds by calls.`,
        '',
        '| load | round | protocol | calls | p50 / p99 / max | CPU per call | failed |',
        '|---|---|---|---|---|---|---|',
        ...[0, 1].flatMap((i) => PROTOCOLS.map((p) => roundLine('GET /users/:id/timeline', p, outer[p][i]!, i))),
        ...[0, 1].flatMap((i) => PROTOCOLS.map((p) => roundLine('raw call', p, raw[p][i]!, i))),
      ],
    };
  } finally {
    await Promise.all(apis.map((a) => a.stop()));
    await dep.stop();
  }
}
