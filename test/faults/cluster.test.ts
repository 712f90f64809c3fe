/** @file
 * A node of a three-node cluster lost under load: `kill -9` of the node
 * that leads `analytics.tweets`, while two API processes take tweets and
 * profile changes and two analytics and two notifications workers apply
 * them, every process given all three nodes. The books are kept by message
 * id (support/books.ts); the figures (publish stall, time until every
 * process is on a surviving node, time until every worker consumes again,
 * the node's rejoin and its members' catch-up) go to docs/SCALING.md.
 * The same fleet and books then go through a rolling restart of all three
 * nodes, and a partition: the node with the most Warren connections cut
 * off from the other two (iptables drops its Erlang distribution traffic;
 * the nodes run pause_minority), then healed. The partition's firewall
 * rules go in the scenario's finally and the suite's after hook, also when
 * it fails (iptables -S WARREN-PARTITION shows any left).
 *
 * The cluster is the test's own (test/support/cluster.ts: c1..c3@localhost
 * on ports 5701-5703); nothing here talks to the machine's broker.
 * Run alone (the partition needs root, or sudo, and iptables):
 *   npm run build && WARREN_TEST_DB=postgres npx mocha --config .mocharc.json --timeout 900000 dist/test/faults/cluster.test.js
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ManagementClient } from '../../src/topology/management';
import { LocalCluster, NET_TICKTIME_S } from '../support/cluster';
import { freePort, TEST_DB, TestSystem, waitFor, type WarrenProcess } from '../support/system';
import { figuresOf, settle } from './support/books';
import { someIds } from './support/ledger';
import { Load } from './support/load';
import { CounterSampler, firstRiseAfter, longestStill, type CounterSource } from './support/progress';
import { FAULT_CONFIG } from './support/scenario';

const QUEUE = 'analytics.tweets';
const DEFAULT_RATE = 300;
/** Writes per second across both APIs; WARREN_TEST_CLUSTER_RATE asks for another. */
const RATE = Number(process.env.WARREN_TEST_CLUSTER_RATE ?? DEFAULT_RATE);
const LOAD_MS = 30_000;
const KILL_AFTER_MS = 10_000;
/** The partition scenario: the cut comes this long into the load, holds this long, and the load goes on past the heal. */
const CUT_AFTER_MS = 10_000;
const PARTITION_MS = 25_000;
const PARTITION_LOAD_MS = 55_000;
/** Long enough for three restarts one after another (each 15-25 s here). */
const ROLLING_LOAD_MS = 75_000;

/** A Warren on the cluster with several API processes; each HTTP request goes to the next API in turn. */
class ClusterSystem extends TestSystem {
  readonly apiPorts: number[] = [];
  private turn = 0;

  constructor(readonly cluster: LocalCluster) {
    super({ managementUrl: cluster.managementUrl, amqpUrlFor: (vhost) => cluster.amqpUrl(vhost) });
  }

  override get baseUrl(): string {
    const port = this.apiPorts.length === 0 ? this.port : this.apiPorts[this.turn++ % this.apiPorts.length]!;
    return `http://127.0.0.1:${port}`;
  }

  async startApis(n: number): Promise<WarrenProcess[]> {
    const started: WarrenProcess[] = [];
    for (let i = 0; i < n; i++) {
      const port = i === 0 ? this.port : await freePort();
      const api = this.start(['api'], { WARREN_HTTP_PORT: String(port) });
      await waitFor(`API ${i + 1} to listen`, async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 30_000).catch((err) => {
        throw new Error(`${(err as Error).message}\n${api.tail()}`);
      });
      this.apiPorts.push(port);
      started.push(api);
    }
    return started;
  }

  /** A worker on a health port of its own (its /readyz and /metrics), once it says it consumes. */
  async startWorkerOn(name: 'analytics' | 'notifications'): Promise<{ proc: WarrenProcess; healthPort: number }> {
    const healthPort = await freePort();
    const proc = this.start(['worker', name], { WARREN_WORKER_HEALTH_PORT: String(healthPort) });
    await waitFor(
      `worker ${name} to consume`,
      async () => ((await (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).json()) as { consuming?: boolean }).consuming === true,
      30_000,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${proc.tail()}`);
    });
    return { proc, healthPort };
  }
}

/** Two APIs and two workers of each kind on the cluster, and the counters that show their progress. */
async function startFleet(sys: ClusterSystem): Promise<{
  apis: WarrenProcess[];
  workers: { proc: WarrenProcess; healthPort: number }[];
  sources: CounterSource[];
  leaders: Record<string, string>;
}> {
  // At info, each process logs the node each of its connections came up on.
  await sys.setUp({ ...FAULT_CONFIG, log: { level: 'info' } });
  const apis = await sys.startApis(2);
  const workers = [
    await sys.startWorkerOn('analytics'),
    await sys.startWorkerOn('analytics'),
    await sys.startWorkerOn('notifications'),
    await sys.startWorkerOn('notifications'),
  ];
  const queue = await sys.management.getQueue(sys.vhost, QUEUE);
  expect(queue?.members, `${QUEUE} has a member on every node`).to.have.members(sys.cluster.nodes.map((n) => n.name));
  // The definitions' policies place each new quorum queue's leader on the node leading the fewest (queue-leader-locator: balanced).
  const leaders = await quorumLeaders(sys.management, sys.vhost);
  const leaderNodes = new Set(Object.values(leaders));
  expect(leaderNodes.size, `leaders of the quorum queues spread over the nodes: ${JSON.stringify(leaders)}`).to.be.above(1);
  const sources: CounterSource[] = [
    ...sys.apiPorts.map((port, i) => ({ name: `api ${i + 1}`, url: `http://127.0.0.1:${port}/metrics`, metric: 'warren_messages_published_total' })),
    ...workers.map((w, i) => ({ name: `${w.proc.name} ${i + 1}`, url: `http://127.0.0.1:${w.healthPort}/metrics`, metric: 'warren_messages_consumed_total' })),
  ];
  return { apis, workers, sources, leaders };
}

/**
 * Makes sure some process of the fleet is connected to `nodeIndex`'s node before the load starts. Each process puts
 * the nodes in an order of its own at random, so with six processes on three nodes none starts on a given node about
 * one time in eleven, and a kill of that node would test no move. Until one is there (ten tries at most), the first
 * analytics worker is stopped (nothing is in flight yet) and another started in its place. Returns the workers stopped.
 */
async function placeOneOn(sys: ClusterSystem, fleet: Awaited<ReturnType<typeof startFleet>>, nodeIndex: number): Promise<WarrenProcess[]> {
  const label = sys.cluster.amqpLabel(nodeIndex);
  const stopped: WarrenProcess[] = [];
  for (let attempt = 0; attempt < 10; attempt++) {
    if ([...(await connectionsByNode(sys)).values()].includes(label)) return stopped;
    const replaced = fleet.workers[0]!;
    await replaced.proc.stop();
    stopped.push(replaced.proc);
    const worker = await sys.startWorkerOn('analytics');
    fleet.workers[0] = worker;
    const source = fleet.sources[fleet.apis.length]!;
    fleet.sources[fleet.apis.length] = { ...source, url: `http://127.0.0.1:${worker.healthPort}/metrics` };
    // Listed once its connections are up: the next look sees where they went.
    await waitFor('the new worker listed', async () => [...(await connectionsByNode(sys)).keys()].some((n) => n.includes(` pid ${worker.proc.pid} `)), 30_000);
  }
  throw new Error(`no process of the fleet came up on ${label} in ten tries`);
}

/** The leader of each of the vhost's quorum queues, by queue name. */
async function quorumLeaders(api: ManagementClient, vhost: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const q of await api.listQueues(vhost)) if (q.type === 'quorum' && q.leader) out[q.name] = q.leader;
  return out;
}

const ON_NODE = / on (\S+:\d+)$/;

/** The vhost's client connections by process and role (the connection name without its node), with the node each is on. */
async function connectionsByNode(sys: TestSystem, api: ManagementClient = sys.management): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const c of await api.listConnections(sys.vhost)) {
    const name = c.client_properties?.connection_name ?? '';
    const m = ON_NODE.exec(name);
    if (m && name.startsWith('warren ')) out.set(name.slice(0, m.index), m[1]!);
  }
  return out;
}

/**
 * When each connection named in a process's logs came up after `since`
 * (its "broker connected to <node>" line, by the connection name without its
 * node): the processes' own clocks, not the management API's listing, which
 * shows a new connection only with its next stats (up to 5 s later).
 */
function connectedAfter(procs: readonly WarrenProcess[], since: number): Map<string, { at: number; node: string }> {
  const out = new Map<string, { at: number; node: string }>();
  for (const proc of procs) {
    for (const line of proc.output) {
      if (!line.includes('broker connected to')) continue;
      let entry: { time?: number; connection?: string; node?: string };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        continue;
      }
      const m = ON_NODE.exec(entry.connection ?? '');
      if (!m || entry.time === undefined || entry.time <= since) continue;
      const name = entry.connection!.slice(0, m.index);
      if (!out.has(name)) out.set(name, { at: entry.time, node: entry.node ?? m[1]! });
    }
  }
  return out;
}

/**
 * Once the load has settled, every work queue empty with nothing unacked:
 * a delivery left unacked that no channel owns (RabbitMQ has had such bugs
 * after elections, rabbitmq-server #15473) would show here. The management
 * API's figures lag by its stats interval, so this waits for them.
 */
async function awaitDrained(sys: TestSystem): Promise<Record<string, { messages: number; unacked: number }>> {
  const queues = ['analytics.tweets', 'notifications.user-events'];
  let last: Record<string, { messages: number; unacked: number }> = {};
  await waitFor(
    'the work queues empty, nothing unacked',
    async () => {
      last = {};
      for (const name of queues) {
        const q = await sys.management.getQueue(sys.vhost, name);
        last[name] = { messages: q?.messages ?? -1, unacked: q?.messages_unacknowledged ?? -1 };
      }
      return Object.values(last).every((q) => q.messages === 0 && q.unacked === 0);
    },
    30_000,
    1000,
  ).catch(() => undefined);
  return last;
}

/** A quorum queue's members, each with its commit index (rabbitmq-queues quorum_status). */
async function quorumStatus(cluster: LocalCluster, askIndex: number, vhost: string): Promise<{ node: string; state: string; commit: number }[]> {
  const out = await cluster.ctl(askIndex, ['quorum_status', QUEUE, '-p', vhost, '--formatter', 'json'], 'rabbitmq-queues', 30_000);
  if (out.trim() === '') throw new Error(`rabbitmq-queues quorum_status ${QUEUE} on ${cluster.node(askIndex).name} printed nothing`);
  return (JSON.parse(out) as Record<string, unknown>[]).map((m) => ({
    node: String(m['Node Name']),
    state: String(m['Raft State']),
    commit: Number(m['Commit Index']),
  }));
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;

/**
 * What the processes logged at warn and above after `since` (until `until`),
 * counted by message and error, without the connection names: what the
 * clients saw of a fault.
 */
function warningsBetween(procs: readonly WarrenProcess[], since: number, until: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const proc of procs) {
    for (const line of proc.output) {
      let entry: { time?: number; level?: number | string; msg?: string; err?: { message?: string } };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        continue;
      }
      const level = typeof entry.level === 'number' ? entry.level : ({ warn: 40, error: 50, fatal: 60 } as Record<string, number>)[entry.level ?? ''];
      if (entry.time === undefined || entry.time <= since || entry.time > until || (level ?? 0) < 40) continue;
      const why = entry.err?.message ? `: ${entry.err.message.split('\n')[0]!.slice(0, 160)}` : '';
      // Counted by kind: message ids and sequence numbers aside.
      const key = `${proc.name.split(' ').slice(0, 2).join(' ')}: ${entry.msg ?? '(no message)'}${why}`.replace(UUID, '<id>');
      out[key] = (out[key] ?? 0) + 1;
    }
  }
  return out;
}

/** Every node with the partitions it sees (`GET /api/nodes`: the nodes it counts itself cut off from, empty when none). */
async function nodePartitions(cluster: LocalCluster): Promise<{ name: string; partitions: unknown }[]> {
  // The first node whose management API answers (a node just resumed opens its listener last).
  let lastError: unknown;
  for (const base of cluster.managementUrl.split(',')) {
    const url = new URL('/api/nodes', base);
    const auth = `Basic ${Buffer.from(`${url.username}:${url.password}`).toString('base64')}`;
    url.username = url.password = '';
    try {
      const res = await fetch(url, { headers: { authorization: auth } });
      if (!res.ok) throw new Error(`GET ${url.href}: ${res.status}`);
      return ((await res.json()) as { name: string; partitions?: unknown }[]).map((n) => ({ name: n.name, partitions: n.partitions }));
    } catch (err) {
      lastError = err;
    }
  }
  throw new Error(`no node's management API listed the nodes: ${(lastError as Error).message}`);
}

/** Resolves with the time (epoch ms) at which `test` first held, polled every `everyMs`; Infinity at the timeout. */
async function whenTrue(test: () => Promise<boolean>, timeoutMs: number, everyMs = 200): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await test().catch(() => false)) return Date.now();
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return Infinity;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

describe('faults: a three-node cluster under load loses a node, restarts them all, and has one cut off', function () {
  this.timeout(900_000);
  let cluster: LocalCluster | undefined;

  before(async function () {
    // Two API processes relay one outbox: PostgreSQL's claims, not two writers on one SQLite file.
    if (TEST_DB !== 'postgres') this.skip();
    cluster = await LocalCluster.start();
  });

  after(async function () {
    // stop() removes a partition's firewall rules first; heal() here too, so that they go even if stopping fails.
    cluster?.heal();
    await cluster?.stop();
  });

  it(`kill -9 of the node leading ${QUEUE} under load from two APIs: every committed event applied once; the node rejoins and catches up`, async function () {
    const c = cluster!;
    const sys = new ClusterSystem(c);
    const expected = new Set<WarrenProcess>();
    try {
      const fleet = await startFleet(sys);
      const { apis, workers, sources, leaders } = fleet;
      // The node that will be killed (the work queue's leader) has a process on it.
      for (const proc of await placeOneOn(sys, fleet, c.nodes.find((n) => n.name === leaders[QUEUE])!.index)) expected.add(proc);
      const sampler = new CounterSampler(sources, 200);
      const load = new Load(sys, { ratePerSecond: RATE, durationMs: LOAD_MS, profileShare: 0.2, users: 20 });
      await load.prepare();
      sampler.start();
      const loadStarted = Date.now();
      load.start();
      await new Promise((r) => setTimeout(r, KILL_AFTER_MS));

      // The node that leads the work queue now, and the processes on it.
      const leader = (await sys.management.getQueue(sys.vhost, QUEUE))!.leader!;
      const victim = c.nodes.find((n) => n.name === leader)!;
      const victimLabel = c.amqpLabel(victim.index);
      const before = await connectionsByNode(sys);
      const onVictim = [...before].filter(([, node]) => node === victimLabel).map(([name]) => name);
      const killedAt = Date.now();
      await c.kill9(victim.index);

      // A new leader, and every connection of every process back, on a surviving node.
      const newLeader = await waitFor(
        `a new leader of ${QUEUE}`,
        async () => {
          const l = (await sys.management.getQueue(sys.vhost, QUEUE))?.leader;
          return l && l !== leader ? l : undefined;
        },
        60_000,
        100,
      );
      const leaderMs = Date.now() - killedAt;
      // Every connection of every process listed again by the management API, none on the dead node.
      await waitFor(
        'every process connected to a surviving node',
        async () => {
          const now = await connectionsByNode(sys);
          return [...before.keys()].every((name) => now.has(name) && now.get(name) !== victimLabel);
        },
        60_000,
        100,
      );
      const listedMs = Date.now() - killedAt;
      // When each connection that was on the dead node came up on a surviving one, by its process's log.
      const moved = connectedAfter(sys.processes, killedAt);
      const movedAt = new Map(onVictim.map((name) => [name, moved.get(name)?.at ?? Infinity]));
      const reconnectedMs = Math.max(...movedAt.values()) - killedAt;
      const movedTo = [...moved.values()].map((m) => m.node);
      expect(movedTo, 'no process back on the dead node').not.to.include(victimLabel);

      const figures = await load.finished();
      const loadEnded = Date.now();
      const settlement = await settle(sys, 120_000, { timeline: false });
      const traces = sampler.stop();

      // The publish stall: the longest time, from a little before the kill to the load's end, in which an API had no confirm.
      const window = { from: killedAt - 2000, to: loadEnded };
      const stalls = traces.slice(0, apis.length).map((t) => ({ name: t.name, ...longestStill(t.rises, window.from, window.to) }));
      const confirmsAnyApi = [...new Set(traces.slice(0, apis.length).flatMap((t) => t.rises))].sort((a, b) => a - b);
      const stallAny = longestStill(confirmsAnyApi, window.from, window.to);
      // Each worker's longest stretch without a settled delivery, and when it settled one again after the kill: after
      // its consume connection came back on a surviving node when it was on the dead one (what settles before that is
      // the dead channel's batch), else after the kill (its consumer waited for the new leader).
      const pauses = traces.slice(apis.length).map((t, i) => {
        const still = longestStill(t.rises, window.from, window.to);
        const consumeConnection = [...before.keys()].find((name) => name.includes(` pid ${workers[i]!.proc.pid} consume`));
        const wasOnVictim = consumeConnection !== undefined && onVictim.includes(consumeConnection);
        const resumedAt = firstRiseAfter(t.rises, wasOnVictim ? (movedAt.get(consumeConnection) ?? killedAt) : killedAt);
        return { name: t.name, moved: wasOnVictim, longestMs: still.ms, consumingAgainMs: resumedAt === undefined ? Infinity : resumedAt - killedAt };
      });

      // The node comes back with the same environment, rejoins by itself, and its member catches up.
      const restartAt = Date.now();
      await c.startNode(victim.index);
      await c.awaitRunning(c.nodes.map((n) => n.index));
      const rejoinMs = Date.now() - restartAt;
      const survivor = c.nodes.find((n) => n.index !== victim.index)!.index;
      let members = await quorumStatus(c, survivor, sys.vhost);
      await waitFor(
        `${victim.name}'s member of ${QUEUE} to catch up`,
        async () => {
          members = await quorumStatus(c, survivor, sys.vhost);
          const lead = members.find((m) => m.state === 'leader');
          const back = members.find((m) => m.node === victim.name);
          return lead !== undefined && back !== undefined && back.state === 'follower' && back.commit === lead.commit;
        },
        120_000,
        500,
      );
      const catchUpMs = Date.now() - restartAt;
      const online = (await waitFor(
        'the rejoined member listed online',
        async () => {
          const q = await sys.management.getQueue(sys.vhost, QUEUE);
          return q?.online?.includes(victim.name) ? q : undefined;
        },
        60_000,
        500,
      ))!;

      const drained = await awaitDrained(sys);
      const row = figuresOf(`kill -9 of ${victim.name} (leader of ${QUEUE})`, `${RATE}/s for ${LOAD_MS / 1000} s`, figures, settlement);
      const report: NodeLossFigures = {
        database: TEST_DB,
        rate: RATE,
        loadMs: LOAD_MS,
        achievedRate: figures.attempted / ((loadEnded - loadStarted) / 1000),
        accepted: row.accepted,
        refused: row.refused,
        committed: row.committed,
        applied: row.applied,
        lost: row.lost.length,
        duplicated: row.duplicated.length,
        strays: row.strays.length,
        parked: row.parked,
        settleMs: row.settleMs,
        victim: victim.name,
        newLeader,
        leaderMs,
        connections: before.size,
        onVictim: onVictim.length,
        reconnectedMs,
        listedMs,
        perNode: [...new Set(before.values())].sort().map((node) => `${node}: ${[...before.values()].filter((n) => n === node).length}`),
        stalls,
        stallAnyMs: stallAny.ms,
        pauses,
        rejoinMs,
        catchUpMs,
        members: members.map((m) => `${m.node} ${m.state} commit ${m.commit}`),
        online: online.online ?? [],
        drained,
      };
      console.log(`      ${JSON.stringify(report)}`);
      writeNodeLossReport(report);

      expect(row.acceptedNotCommitted.length, `accepted writes never committed: ${someIds(row.acceptedNotCommitted)}`).to.equal(0);
      expect(row.lost.length, `event ids committed and never applied: ${someIds(row.lost)}`).to.equal(0);
      expect(row.duplicated.length, `event ids applied more than once: ${someIds(row.duplicated)}`).to.equal(0);
      expect(row.strays.length, `ids applied that were never committed: ${someIds(row.strays)}`).to.equal(0);
      expect(settlement.books.outboxUnsent, 'outbox rows never relayed').to.equal(0);
      expect(row.parked, 'parked messages').to.equal(0);
      expect(Object.keys(figures.refused), `answers other than 200/201: ${row.refused}`).to.deep.equal([]);
      expect(onVictim.length, 'some process was connected to the node killed').to.be.above(0);
      for (const p of pauses) expect(p.consumingAgainMs, `${p.name} consumed again`).to.be.below(Infinity);
      expect(online.online, 'every member online again').to.have.members(c.nodes.map((n) => n.name));
      for (const [name, q] of Object.entries(drained)) expect(q, `${name} afterwards`).to.deep.equal({ messages: 0, unacked: 0 });
      for (const proc of sys.processes) {
        if (expected.has(proc)) continue;
        expect(proc.running, `${proc.name} died unexpectedly:\n${proc.tail()}`).to.equal(true);
      }
    } finally {
      await sys.tearDown();
    }
  });

  it('a rolling restart of all three nodes under load: nothing lost or doubled, no request refused', async function () {
    const c = cluster!;
    const sys = new ClusterSystem(c);
    try {
      const { apis, sources } = await startFleet(sys);
      const sampler = new CounterSampler(sources, 200);
      const load = new Load(sys, { ratePerSecond: RATE, durationMs: ROLLING_LOAD_MS, profileShare: 0.2, users: 20 });
      await load.prepare();
      sampler.start();
      const loadStarted = Date.now();
      load.start();
      await new Promise((r) => setTimeout(r, 5000));
      const restarts: RestartFigures[] = [];
      for (const node of c.nodes) {
        // As an operator would: one node at a time, the next only once the last is back and its members have caught up.
        const stoppedAt = Date.now();
        await c.ctl(node.index, ['stop']);
        const stopMs = Date.now() - stoppedAt;
        await c.startNode(node.index);
        await c.awaitRunning(c.nodes.map((n) => n.index));
        const backMs = Date.now() - stoppedAt;
        const other = c.nodes.find((n) => n.index !== node.index)!.index;
        await waitFor(
          `${node.name}'s member of ${QUEUE} to catch up`,
          async () => {
            const members = await quorumStatus(c, other, sys.vhost);
            const lead = members.find((m) => m.state === 'leader');
            const back = members.find((m) => m.node === node.name);
            return lead !== undefined && back !== undefined && back.commit >= lead.commit - 50 && ['follower', 'leader'].includes(back.state);
          },
          120_000,
          500,
        );
        restarts.push({ node: node.name, stoppedAt, stopMs, backMs, caughtUpMs: Date.now() - stoppedAt });
      }
      const figures = await load.finished();
      const loadEnded = Date.now();
      const settlement = await settle(sys, 120_000, { timeline: false });
      const traces = sampler.stop();
      const firstStop = restarts[0]!.stoppedAt;
      const stalls = traces.slice(0, apis.length).map((t) => ({ name: t.name, ms: longestStill(t.rises, firstStop - 2000, loadEnded).ms }));
      const pauses = traces.slice(apis.length).map((t) => ({ name: t.name, ms: longestStill(t.rises, firstStop - 2000, loadEnded).ms }));
      const drained = await awaitDrained(sys);
      const row = figuresOf('rolling restart of c1, c2, c3', `${RATE}/s for ${ROLLING_LOAD_MS / 1000} s`, figures, settlement);
      const report: RollingFigures = {
        database: TEST_DB,
        rate: RATE,
        loadMs: ROLLING_LOAD_MS,
        achievedRate: figures.attempted / ((loadEnded - loadStarted) / 1000),
        accepted: row.accepted,
        refused: row.refused,
        committed: row.committed,
        applied: row.applied,
        lost: row.lost.length,
        duplicated: row.duplicated.length,
        parked: row.parked,
        settleMs: row.settleMs,
        restarts,
        stalls,
        pauses,
        drained,
      };
      console.log(`      ${JSON.stringify(report)}`);
      writeRollingReport(report);

      expect(row.acceptedNotCommitted.length, `accepted writes never committed: ${someIds(row.acceptedNotCommitted)}`).to.equal(0);
      expect(row.lost.length, `event ids committed and never applied: ${someIds(row.lost)}`).to.equal(0);
      expect(row.duplicated.length, `event ids applied more than once: ${someIds(row.duplicated)}`).to.equal(0);
      expect(row.strays.length, `ids applied that were never committed: ${someIds(row.strays)}`).to.equal(0);
      expect(settlement.books.outboxUnsent, 'outbox rows never relayed').to.equal(0);
      expect(row.parked, 'parked messages').to.equal(0);
      expect(Object.keys(figures.refused), `answers other than 200/201: ${row.refused}`).to.deep.equal([]);
      for (const [name, q] of Object.entries(drained)) expect(q, `${name} afterwards`).to.deep.equal({ messages: 0, unacked: 0 });
      for (const proc of sys.processes) expect(proc.running, `${proc.name} died unexpectedly:\n${proc.tail()}`).to.equal(true);
    } finally {
      await sys.tearDown();
    }
  });

  // Not yet reliable on these machines (README "Running on a cluster" has what its runs showed):
  // it runs only when asked for, with WARREN_TEST_PARTITION=1, and never in CI until it passes there.
  (process.env.WARREN_TEST_PARTITION === '1' ? it : it.skip)(
    'one node cut off from the other two under load (pause_minority): its clients move to the majority, nothing lost or doubled; healed, it rejoins and catches up',
    async function () {
      const c = cluster!;
      const sys = new ClusterSystem(c);
      try {
        // One CLI call asks every node (each call boots a VM: seconds on a busy machine).
        const settings = await c.ctl(1, [
          'eval',
          // Each ticktime in a tuple: a list of small integers would print as a string.
          '{element(1, rpc:multicall(application, get_env, [rabbit, cluster_partition_handling])), [{ticktime, T} || T <- element(1, rpc:multicall(net_kernel, get_net_ticktime, []))]}.',
        ]);
        const each = (value: string) => c.nodes.map(() => value).join(',');
        expect(settings.replace(/\s+/g, ''), "the nodes' partition handling and net_ticktime").to.equal(
          `{[${each('{ok,pause_minority}')}],[${each(`{ticktime,${NET_TICKTIME_S}}`)}]}`,
        );
        const { apis, workers, sources, leaders } = await startFleet(sys);
        const sampler = new CounterSampler(sources, 200);
        const load = new Load(sys, { ratePerSecond: RATE, durationMs: PARTITION_LOAD_MS, profileShare: 0.2, users: 20 });
        await load.prepare();
        sampler.start();
        const loadStarted = Date.now();
        load.start();
        await new Promise((r) => setTimeout(r, CUT_AFTER_MS));

        // The node with the most Warren connections is cut off (on a tie, the one leading the work queue): clients on the minority.
        const before = await connectionsByNode(sys);
        const led = (await quorumLeaders(sys.management, sys.vhost))[QUEUE];
        const load_ = (node: (typeof c.nodes)[number]) =>
          [...before.values()].filter((l) => l === c.amqpLabel(node.index)).length * 2 + (node.name === led ? 1 : 0);
        const victim = [...c.nodes].sort((a, b) => load_(b) - load_(a))[0]!;
        const victimLabel = c.amqpLabel(victim.index);
        const onVictim = [...before].filter(([, node]) => node === victimLabel).map(([name]) => name);
        const majority = c.nodes.filter((n) => n.index !== victim.index);
        const majorityApi = new ManagementClient(c.managementUrlOf(majority.map((n) => n.index)));
        const victimLed = Object.entries(await quorumLeaders(majorityApi, sys.vhost))
          .filter(([, node]) => node === victim.name)
          .map(([name]) => name);

        const cutAt = Date.now();
        c.cutOff(victim.index);
        const rules = c.partitionRules().length;
        // The minority node stops serving (pause_minority closes its listeners) once it counts its peers gone, and the
        // majority elects new leaders for the queues it led; meanwhile every connection that was on it moves.
        const [pausedAt, leadersMovedAt] = await Promise.all([
          whenTrue(async () => !(await c.acceptsAmqp(victim.index)), 90_000, 100),
          whenTrue(async () => {
            const now = await quorumLeaders(majorityApi, sys.vhost);
            return victimLed.every((q) => now[q] !== undefined && now[q] !== victim.name);
          }, 90_000),
        ]);
        const listedAt = await whenTrue(async () => {
          const now = await connectionsByNode(sys, majorityApi);
          return [...before.keys()].every((name) => now.has(name) && now.get(name) !== victimLabel);
        }, 90_000);
        const moved = connectedAfter(sys.processes, cutAt);
        const movedAt = new Map(onVictim.map((name) => [name, moved.get(name)?.at ?? Infinity]));
        const lastMovedAt = Math.max(...movedAt.values());
        const movedTo = [...moved.values()].map((m) => m.node);
        expect(movedTo, 'no process back on the cut-off node').not.to.include(victimLabel);
        const newLeaders = await quorumLeaders(majorityApi, sys.vhost);

        // The cluster runs on two nodes a while, then the network heals; the paused node resumes by itself.
        await new Promise((r) => setTimeout(r, Math.max(0, cutAt + PARTITION_MS - Date.now())));
        const healAt = Date.now();
        c.heal();
        expect(c.partitionRules(), 'firewall rules left after the heal').to.deep.equal([]);
        const resumedAt = await whenTrue(() => c.acceptsAmqp(victim.index), 120_000, 100);
        await c.awaitRunning(c.nodes.map((n) => n.index));
        const rejoinedAt = Date.now();
        // Each node's view of partitions, from the management API (as `rabbitmqctl cluster_status` shows them).
        // A node that has just resumed is listed before its own figures are (no `partitions` yet): asked again until each has them.
        let partitions: Record<string, unknown> = {};
        await waitFor(
          "each node's view of partitions",
          async () => {
            partitions = Object.fromEntries((await nodePartitions(c).catch(() => [])).map((n) => [n.name, n.partitions]));
            return Object.keys(partitions).length === c.nodes.length && Object.values(partitions).every((p) => p !== undefined);
          },
          60_000,
          500,
        ).catch(() => undefined);
        const other = majority[0]!.index;
        // Right after the heal the CLI may find the queue between leaders and print nothing: asked again until it answers.
        let members: Awaited<ReturnType<typeof quorumStatus>> = [];
        await waitFor(
          `${victim.name}'s member of ${QUEUE} to catch up`,
          async () => {
            members = await quorumStatus(c, other, sys.vhost).catch(() => members);
            const lead = members.find((m) => m.state === 'leader');
            const back = members.find((m) => m.node === victim.name);
            return lead !== undefined && back !== undefined && back.state === 'follower' && back.commit >= lead.commit - 50;
          },
          120_000,
          500,
        );
        const caughtUpAt = Date.now();

        const figures = await load.finished();
        const loadEnded = Date.now();
        const settlement = await settle(sys, 120_000, { timeline: false });
        const traces = sampler.stop();
        const window = { from: cutAt - 2000, to: loadEnded };
        const stalls = traces.slice(0, apis.length).map((t) => ({ name: t.name, ms: longestStill(t.rises, window.from, window.to).ms }));
        const pauses = traces.slice(apis.length).map((t, i) => {
          const consumeConnection = [...before.keys()].find((name) => name.includes(` pid ${workers[i]!.proc.pid} consume`));
          const wasOnVictim = consumeConnection !== undefined && onVictim.includes(consumeConnection);
          return { name: t.name, moved: wasOnVictim, longestMs: longestStill(t.rises, window.from, window.to).ms };
        });
        // Every member of every Warren quorum queue online again, with nothing unacked that no channel owns.
        const online = await whenTrue(
          async () => {
            const qs = (await sys.management.listQueues(sys.vhost)).filter((q) => q.type === 'quorum');
            return qs.length > 0 && qs.every((q) => c.nodes.every((n) => q.online?.includes(n.name)));
          },
          60_000,
          500,
        );
        const drained = await awaitDrained(sys);
        const seen = warningsBetween(sys.processes, cutAt, Date.now());
        const row = figuresOf(`${victim.name} cut off`, `${RATE}/s for ${PARTITION_LOAD_MS / 1000} s`, figures, settlement);
        const report: PartitionFigures = {
          database: TEST_DB,
          rate: RATE,
          loadMs: PARTITION_LOAD_MS,
          achievedRate: figures.attempted / ((loadEnded - loadStarted) / 1000),
          accepted: row.accepted,
          refused: row.refused,
          committed: row.committed,
          applied: row.applied,
          lost: row.lost.length,
          duplicated: row.duplicated.length,
          strays: row.strays.length,
          parked: row.parked,
          settleMs: row.settleMs,
          victim: victim.name,
          rules,
          leadersBefore: leaders,
          victimLed,
          newLeaders: Object.fromEntries(victimLed.map((q) => [q, newLeaders[q] ?? '(none)'])),
          connections: before.size,
          onVictim: onVictim.length,
          perNode: [...new Set(before.values())].sort().map((node) => `${node}: ${[...before.values()].filter((n) => n === node).length}`),
          pausedMs: pausedAt - cutAt,
          leadersMs: leadersMovedAt - cutAt,
          movedMs: lastMovedAt - cutAt,
          listedMs: listedAt - cutAt,
          partitionMs: healAt - cutAt,
          resumedMs: resumedAt - healAt,
          rejoinMs: rejoinedAt - healAt,
          catchUpMs: caughtUpAt - healAt,
          partitions,
          members: members.map((m) => `${m.node} ${m.state} commit ${m.commit}`),
          allOnline: online < Infinity,
          stalls,
          pauses,
          seen,
          drained,
        };
        console.log(`      ${JSON.stringify(report)}`);
        writePartitionReport(report);

        expect(row.acceptedNotCommitted.length, `accepted writes never committed: ${someIds(row.acceptedNotCommitted)}`).to.equal(0);
        expect(row.lost.length, `event ids committed and never applied: ${someIds(row.lost)}`).to.equal(0);
        expect(row.duplicated.length, `event ids applied more than once: ${someIds(row.duplicated)}`).to.equal(0);
        expect(row.strays.length, `ids applied that were never committed: ${someIds(row.strays)}`).to.equal(0);
        expect(settlement.books.outboxUnsent, 'outbox rows never relayed').to.equal(0);
        expect(row.parked, 'parked messages').to.equal(0);
        expect(Object.keys(figures.refused), `answers other than 200/201: ${row.refused}`).to.deep.equal([]);
        expect(onVictim.length, 'some process was connected to the node cut off').to.be.above(0);
        expect(pausedAt, `${victim.name} stopped serving AMQP while cut off (pause_minority)`).to.be.below(Infinity);
        expect(lastMovedAt, 'every connection that was on the cut-off node came up on the majority').to.be.below(healAt);
        expect(leadersMovedAt, `new leaders on the majority for ${victimLed.join(', ') || '(none)'}`).to.be.below(Infinity);
        expect(resumedAt, `${victim.name} serving again after the heal`).to.be.below(Infinity);
        expect(Object.keys(partitions), 'nodes the management API lists').to.have.members(c.nodes.map((n) => n.name));
        for (const [node, p] of Object.entries(partitions)) expect(p, `partitions ${node} reports after the heal`).to.deep.equal([]);
        expect(online, 'every member of every quorum queue online again').to.be.below(Infinity);
        for (const [name, q] of Object.entries(drained)) expect(q, `${name} afterwards`).to.deep.equal({ messages: 0, unacked: 0 });
        for (const proc of sys.processes) expect(proc.running, `${proc.name} died unexpectedly:\n${proc.tail()}`).to.equal(true);
      } finally {
        c.heal();
        await sys.tearDown();
      }
    },
  );
});

interface NodeLossFigures {
  database: string;
  rate: number;
  loadMs: number;
  achievedRate: number;
  accepted: number;
  refused: string;
  committed: number;
  applied: number;
  lost: number;
  duplicated: number;
  strays: number;
  parked: number;
  settleMs: number;
  victim: string;
  newLeader: string;
  leaderMs: number;
  connections: number;
  onVictim: number;
  reconnectedMs: number;
  listedMs: number;
  perNode: string[];
  stalls: { name: string; ms: number }[];
  stallAnyMs: number;
  pauses: { name: string; moved: boolean; longestMs: number; consumingAgainMs: number }[];
  rejoinMs: number;
  catchUpMs: number;
  members: string[];
  online: string[];
  drained: Record<string, { messages: number; unacked: number }>;
}

const BEGIN = '<!-- node-loss figures: written by test/faults/cluster.test.ts -->';
const END = '<!-- end of node-loss figures -->';

const worst = (xs: number[]) => Math.max(...xs);

/** Writes the node-loss section of docs/SCALING.md (the rest of the file, if any, is kept). */
function writeNodeLossReport(f: NodeLossFigures): void {
  const section = `${BEGIN}
## A node lost under load (three-node cluster)

Measured on ${new Date().toISOString().slice(0, 10)} (${process.platform}, Node ${process.version}, 2 shared cores,
RabbitMQ 3.10 three nodes on one machine, ${f.database === 'postgres' ? 'PostgreSQL' : 'SQLite'}). Reproduce with:

\`\`\`sh
npm run build && WARREN_TEST_DB=${f.database}${f.rate === DEFAULT_RATE ? '' : ` WARREN_TEST_CLUSTER_RATE=${f.rate}`} npx mocha --config .mocharc.json --timeout 900000 dist/test/faults/cluster.test.js
\`\`\`

Two \`warren api\` processes, two analytics and two notifications workers,
every one given all three nodes in \`amqp.url\` (each dials them in its own
order). Load: ${f.rate} writes/s asked for ${f.loadMs / 1000} s (${f.achievedRate.toFixed(0)}/s sent), 80 % tweets, 20 % profile
changes, spread over both APIs. ${seconds(KILL_AFTER_MS)} in, \`kill -9\` of the node leading
\`${QUEUE}\` (${f.victim}); ${f.onVictim} of the ${f.connections} Warren connections were on it (connections per node
before the kill, ${f.perNode.join(', ')}: each process picks its first node at random).

| figure | measured |
|---|---|
| new leader of \`${QUEUE}\` (${f.newLeader}), seen by the management API | ${seconds(f.leaderMs)} after the kill |
| every process connected to a surviving node (each connection that was on the dead node, by its process's "broker connected to" log) | ${seconds(f.reconnectedMs)} (the management API listed them all ${seconds(f.listedMs)} after the kill: it lists a connection with its next stats) |
| publish stall: longest time an API had no confirm (${f.stalls.map((s) => `${s.name} ${seconds(s.ms)}`).join(', ')}) | ${seconds(worst(f.stalls.map((s) => s.ms)))} (both APIs together: ${seconds(f.stallAnyMs)}) |
| every worker consuming again (${f.pauses.map((p) => `${p.name}${p.moved ? ', moved off the dead node,' : ''} ${seconds(p.consumingAgainMs)}`).join('; ')}) | ${seconds(worst(f.pauses.map((p) => p.consumingAgainMs)))} after the kill |
| longest pause of a worker (no delivery settled) | ${seconds(worst(f.pauses.map((p) => p.longestMs)))} |
| accepted / refused | ${f.accepted} / ${f.refused} |
| committed / applied / lost / duplicated / strays / parked | ${f.committed} / ${f.applied} / ${f.lost} / ${f.duplicated} / ${f.strays} / ${f.parked} |
| settled after the load (every committed event applied) | ${seconds(f.settleMs)} |
| node restarted, back in the cluster (running) | ${seconds(f.rejoinMs)} |
| its member of \`${QUEUE}\` caught up (same commit index as the leader) | ${seconds(f.catchUpMs)} after the restart |

Members afterwards: ${f.members.join('; ')}; online: ${f.online.join(', ')}.
Work queues afterwards (messages / unacked, by the management API): ${Object.entries(f.drained)
    .map(([name, q]) => `${name} ${q.messages} / ${q.unacked}`)
    .join(', ')}: no delivery left unacked that no channel owns.

Counters are sampled every 200 ms from each process's \`/metrics\`
(\`warren_messages_published_total\` of the APIs, \`warren_messages_consumed_total\`
of the workers), so each time is good to about 0.2 s. The books are kept
by message id: each tweet's effect is counted by a hashtag of its own, each
profile change by its notification (test/faults/support/books.ts).
${END}`;
  writeSection(BEGIN, END, section);
}

/** Puts `section` (which opens with `begin` and closes with `end`) into docs/SCALING.md, in place of the last one. */
function writeSection(begin: string, end: string, section: string): void {
  const file = path.resolve(__dirname, '..', '..', '..', 'docs', 'SCALING.md');
  const old = fs.existsSync(file)
    ? fs.readFileSync(file, 'utf8')
    : '# Warren at scale\n\nFigures of runs that take Warren beyond one broker node and one process of each kind.\n\n';
  const from = old.indexOf(begin);
  const to = old.indexOf(end);
  const text = from >= 0 && to > from ? old.slice(0, from) + section + old.slice(to + end.length) : `${old.trimEnd()}\n\n${section}\n`;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

interface RestartFigures {
  node: string;
  stoppedAt: number;
  stopMs: number;
  backMs: number;
  caughtUpMs: number;
}

interface RollingFigures {
  database: string;
  rate: number;
  loadMs: number;
  achievedRate: number;
  accepted: number;
  refused: string;
  committed: number;
  applied: number;
  lost: number;
  duplicated: number;
  parked: number;
  settleMs: number;
  restarts: RestartFigures[];
  stalls: { name: string; ms: number }[];
  pauses: { name: string; ms: number }[];
  drained: Record<string, { messages: number; unacked: number }>;
}

const ROLLING_BEGIN = '<!-- rolling-restart figures: written by test/faults/cluster.test.ts -->';
const ROLLING_END = '<!-- end of rolling-restart figures -->';

function writeRollingReport(f: RollingFigures): void {
  const section = `${ROLLING_BEGIN}
## A rolling restart under load (three-node cluster)

Measured on ${new Date().toISOString().slice(0, 10)}, same machine and fleet as above (${f.database === 'postgres' ? 'PostgreSQL' : 'SQLite'}): ${f.rate} writes/s asked
for ${f.loadMs / 1000} s (${f.achievedRate.toFixed(0)}/s sent). Each node in turn stopped (\`rabbitmqctl stop\`) and
started again, the next only once the last was back and its member of \`${QUEUE}\` had caught up.

| node | stop took | back in the cluster | its member of \`${QUEUE}\` caught up (commit index within 50 entries of the leader's, under load) |
|---|---|---|---|
${f.restarts.map((r) => `| ${r.node} | ${seconds(r.stopMs)} | ${seconds(r.backMs)} after the stop began | ${seconds(r.caughtUpMs)} |`).join('\n')}

| figure | measured |
|---|---|
| longest time an API had no confirm, over all three restarts (${f.stalls.map((s) => `${s.name} ${seconds(s.ms)}`).join(', ')}) | ${seconds(worst(f.stalls.map((s) => s.ms)))} |
| longest pause of a worker (${f.pauses.map((p) => `${p.name} ${seconds(p.ms)}`).join(', ')}) | ${seconds(worst(f.pauses.map((p) => p.ms)))} |
| accepted / refused | ${f.accepted} / ${f.refused} |
| committed / applied / lost / duplicated / parked | ${f.committed} / ${f.applied} / ${f.lost} / ${f.duplicated} / ${f.parked} |
| settled after the load | ${seconds(f.settleMs)} |
| work queues afterwards, messages / unacked | ${Object.entries(f.drained)
    .map(([name, q]) => `${name} ${q.messages} / ${q.unacked}`)
    .join(', ')} |
${ROLLING_END}`;
  writeSection(ROLLING_BEGIN, ROLLING_END, section);
}

interface PartitionFigures {
  database: string;
  rate: number;
  loadMs: number;
  achievedRate: number;
  accepted: number;
  refused: string;
  committed: number;
  applied: number;
  lost: number;
  duplicated: number;
  strays: number;
  parked: number;
  settleMs: number;
  victim: string;
  rules: number;
  leadersBefore: Record<string, string>;
  victimLed: string[];
  newLeaders: Record<string, string>;
  connections: number;
  onVictim: number;
  perNode: string[];
  pausedMs: number;
  leadersMs: number;
  movedMs: number;
  listedMs: number;
  partitionMs: number;
  resumedMs: number;
  rejoinMs: number;
  catchUpMs: number;
  partitions: Record<string, unknown>;
  members: string[];
  allOnline: boolean;
  stalls: { name: string; ms: number }[];
  pauses: { name: string; moved: boolean; longestMs: number }[];
  seen: Record<string, number>;
  drained: Record<string, { messages: number; unacked: number }>;
}

const PARTITION_BEGIN = '<!-- partition figures: written by test/faults/cluster.test.ts -->';
const PARTITION_END = '<!-- end of partition figures -->';

function writePartitionReport(f: PartitionFigures): void {
  const perLeader = (leaders: Record<string, string>) => {
    const nodes = [...new Set(Object.values(leaders))].sort();
    return nodes.map((node) => `${node} ${Object.values(leaders).filter((n) => n === node).length}`).join(', ');
  };
  const section = `${PARTITION_BEGIN}
## One node cut off from the other two under load (three-node cluster)

Measured on ${new Date().toISOString().slice(0, 10)}, same machine and fleet as above (${f.database === 'postgres' ? 'PostgreSQL' : 'SQLite'}): ${f.rate} writes/s asked
for ${f.loadMs / 1000} s (${f.achievedRate.toFixed(0)}/s sent). The nodes run with \`cluster_partition_handling = pause_minority\`
and \`net_ticktime\` ${NET_TICKTIME_S} s (test/support/cluster.ts). ${seconds(CUT_AFTER_MS)} in, the node with the most Warren
connections (${f.victim}; ${f.onVictim} of the ${f.connections}: ${f.perNode.join(', ')}) was cut off: ${f.rules} iptables rules drop
every packet of the Erlang distribution between it and the other two (each node dials its peers from a loopback
address of its own), while its AMQP and management ports stay reachable. ${seconds(f.partitionMs)} later the rules were removed.

Leaders of the ${Object.keys(f.leadersBefore).length} quorum queues after \`topology apply\` (\`queue-leader-locator: balanced\`): ${perLeader(f.leadersBefore)}.
${f.victim} led ${f.victimLed.length === 0 ? 'none of them' : f.victimLed.map((q) => `\`${q}\``).join(', ')}.

| figure | measured |
|---|---|
| ${f.victim} stopped serving (its AMQP listener closed: pause_minority) | ${seconds(f.pausedMs)} after the cut |
| new leaders on the majority for the queues it led (${
    Object.entries(f.newLeaders)
      .map(([q, n]) => `${q} → ${n}`)
      .join(', ') || 'none'
  }) | ${seconds(f.leadersMs)} after the cut |
| every connection that was on it up on the majority (by each process's "broker connected to" log) | ${seconds(f.movedMs)} after the cut (listed by the majority's management API at ${seconds(f.listedMs)}) |
| longest time an API had no confirm (${f.stalls.map((s) => `${s.name} ${seconds(s.ms)}`).join(', ')}) | ${seconds(worst(f.stalls.map((s) => s.ms)))} |
| longest pause of a worker (${f.pauses.map((p) => `${p.name}${p.moved ? ' (moved)' : ''} ${seconds(p.longestMs)}`).join(', ')}) | ${seconds(worst(f.pauses.map((p) => p.longestMs)))} |
| after the heal: ${f.victim} serving again / running in the cluster / its member of \`${QUEUE}\` within 50 entries of the leader | ${seconds(f.resumedMs)} / ${seconds(f.rejoinMs)} / ${seconds(f.catchUpMs)} |
| partitions reported after the heal (each node's \`partitions\` in the management API's \`/api/nodes\`) | ${Object.values(f.partitions).every((p) => JSON.stringify(p) === '[]') ? 'none' : JSON.stringify(f.partitions)} |
| accepted / refused | ${f.accepted} / ${f.refused} |
| committed / applied / lost / duplicated / strays / parked | ${f.committed} / ${f.applied} / ${f.lost} / ${f.duplicated} / ${f.strays} / ${f.parked} |
| settled after the load | ${seconds(f.settleMs)} |
| work queues afterwards, messages / unacked | ${Object.entries(f.drained)
    .map(([name, q]) => `${name} ${q.messages} / ${q.unacked}`)
    .join(', ')} |

Members of \`${QUEUE}\` afterwards: ${f.members.join('; ')}; every member of every quorum queue online: ${f.allOnline ? 'yes' : 'no'}.

What the clients saw (lines at warn and above in the processes' logs from the cut on, by message, with counts):

${
  Object.entries(f.seen)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([line, n]) => `- ${n} × ${line.replace(/\|/g, '/')}`)
    .join('\n') || '- nothing'
}
${PARTITION_END}`;
  writeSection(PARTITION_BEGIN, PARTITION_END, section);
}
