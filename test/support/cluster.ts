/** @file
 * A three-node RabbitMQ cluster of a test's own, beside the machine's node
 * (rabbit@localhost, never touched): nodes c1..c3@localhost on AMQP ports
 * 5701-5703, management 15701-15703, distribution 25701-25703, all data in
 * a temp directory. The recipe is ../shared/cluster.md's: one environment
 * per node, every rabbitmqctl naming its node with -n, the cookie in the
 * directory's own HOME. `stop()` stops the nodes and removes the
 * directory; a run that ends without it (a failed hook, an interrupt) kills
 * the nodes and removes the directory on exit.
 *
 * Partitions: each node dials its peers from a loopback address of its own
 * (c1 from 127.0.1.1, c2 from 127.0.1.2, ...; every 127/8 address is on
 * `lo`), so `cutOff(n)` can drop exactly the distribution traffic between
 * node n and the others with iptables, in a chain of its own
 * (WARREN-PARTITION), leaving the CLI (which dials from 127.0.0.1), the
 * AMQP and management ports and the machine's own node alone. `heal()`
 * removes the chain; `stop()` and the exit handler heal too.
 */

import { execFile, execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ManagementClient } from '../../src/topology/management';
import { waitFor } from './wait';

const run = promisify(execFile);

/** Debian keeps the package's own scripts here; the sbin wrappers would switch to the rabbitmq user. */
function rabbitBin(): string {
  const listed = execFileSync('dpkg', ['-L', 'rabbitmq-server'], { encoding: 'utf8' }).split('\n');
  const ctl = listed.find((line) => line.endsWith('/bin/rabbitmqctl') && !line.includes('/sbin/'));
  if (!ctl) throw new Error('rabbitmq-server is not installed (no rabbitmqctl in dpkg -L rabbitmq-server)');
  return path.dirname(ctl);
}

export interface ClusterNode {
  /** 1..3 */
  index: number;
  /** Erlang node name, `c1@localhost`. */
  name: string;
  amqpPort: number;
  managementPort: number;
  distPort: number;
  /** The loopback address this node's outgoing distribution connections come from (`inet_dist_connect_options`). */
  distAddress: string;
  dir: string;
  pidFile: string;
}

/** Every cluster still running when the run exits: its nodes killed, its directory removed. */
const running = new Set<LocalCluster>();
process.on('exit', () => {
  for (const cluster of running) cluster.killNow();
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const cluster of running) cluster.killNow();
    process.exit(130);
  });
}

/** Seconds of silence after which a node counts a peer as gone (Erlang's net_ticktime, default 60). */
export const NET_TICKTIME_S = 10;

/** The iptables chain a partition's rules live in, jumped to from INPUT (loopback packets pass it once). */
const PARTITION_CHAIN = 'WARREN-PARTITION';

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export class LocalCluster {
  readonly dir: string;
  readonly nodes: ClusterNode[];
  private readonly bin = rabbitBin();
  private readonly home: string;
  /** Whether a partition's rules may be in place (cutOff ran since the last heal). */
  private cutIn = false;

  private constructor(size: number) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-cluster-'));
    this.home = path.join(this.dir, 'home');
    this.nodes = Array.from({ length: size }, (_, i) => {
      const index = i + 1;
      const dir = path.join(this.dir, `c${index}`);
      return {
        index,
        name: `c${index}@localhost`,
        amqpPort: 5700 + index,
        managementPort: 15700 + index,
        distPort: 25700 + index,
        distAddress: `127.0.1.${index}`,
        dir,
        pidFile: path.join(dir, `c${index}.pid`),
      };
    });
  }

  /**
   * Starts the nodes, joins every one to c1, and resolves once the
   * management API lists them all running. Refuses to start when a port of
   * the recipe is taken (another cluster, or a leftover node).
   */
  static async start(size = 3): Promise<LocalCluster> {
    const cluster = new LocalCluster(size);
    running.add(cluster);
    try {
      for (const n of cluster.nodes) {
        for (const port of [n.amqpPort, n.managementPort, n.distPort]) {
          if (!(await portFree(port))) throw new Error(`port ${port} of cluster node ${n.name} is taken: is another local cluster running?`);
        }
      }
      cluster.prepare();
      await Promise.all(cluster.nodes.map((n) => cluster.startNode(n.index)));
      for (const n of cluster.nodes.slice(1)) {
        await cluster.ctl(n.index, ['stop_app']);
        await cluster.ctl(n.index, ['join_cluster', cluster.nodes[0]!.name]);
        await cluster.ctl(n.index, ['start_app']);
      }
      await cluster.awaitRunning(cluster.nodes.map((n) => n.index));
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  private prepare(): void {
    fs.mkdirSync(this.home, { recursive: true });
    fs.writeFileSync(path.join(this.home, '.erlang.cookie'), crypto.randomBytes(20).toString('hex').toUpperCase(), { mode: 0o400 });
    fs.writeFileSync(path.join(this.dir, 'rabbitmq-env.conf'), '');
    for (const n of this.nodes) {
      fs.mkdirSync(n.dir, { recursive: true });
      fs.writeFileSync(
        path.join(n.dir, 'rabbitmq.conf'),
        [
          `management.tcp.port = ${n.managementPort}`,
          'management.tcp.ip = 127.0.0.1',
          // The minority side of a partition stops serving, so clients move to the majority (cluster.md: with `ignore` a cut-off node lost messages).
          'cluster_partition_handling = pause_minority',
          '',
        ].join('\n'),
      );
      fs.writeFileSync(path.join(n.dir, 'enabled_plugins'), '[rabbitmq_management].\n');
    }
  }

  /** The environment of node `index` (its server and the CLI that talks to it). */
  private env(index: number): NodeJS.ProcessEnv {
    const n = this.node(index);
    return {
      PATH: `${this.bin}:${process.env.PATH ?? ''}`,
      LANG: 'C.UTF-8',
      HOME: this.home,
      RABBITMQ_CONF_ENV_FILE: path.join(this.dir, 'rabbitmq-env.conf'),
      RABBITMQ_NODENAME: n.name,
      RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
      RABBITMQ_NODE_PORT: String(n.amqpPort),
      RABBITMQ_DIST_PORT: String(n.distPort),
      RABBITMQ_CONFIG_FILE: path.join(n.dir, 'rabbitmq.conf'),
      RABBITMQ_ENABLED_PLUGINS_FILE: path.join(n.dir, 'enabled_plugins'),
      RABBITMQ_MNESIA_BASE: path.join(n.dir, 'mnesia'),
      RABBITMQ_LOG_BASE: path.join(n.dir, 'log'),
      RABBITMQ_PID_FILE: n.pidFile,
      // Listen on 127.0.0.1, dial peers from the node's own address (so a partition can be cut by address and port), and
      // notice a silent peer within NET_TICKTIME_S to 1.25 × that (the default 60 s kept a cut-off node serving for a minute).
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: [
        '-kernel inet_dist_use_interface {127,0,0,1}',
        `-kernel inet_dist_connect_options [{ip,{${n.distAddress.replace(/\./g, ',')}}}]`,
        `-kernel net_ticktime ${NET_TICKTIME_S}`,
      ].join(' '),
      RABBITMQ_CTL_DIST_PORT_MIN: '36700',
      RABBITMQ_CTL_DIST_PORT_MAX: '36799',
      ERL_EPMD_ADDRESS: '127.0.0.1',
    };
  }

  node(index: number): ClusterNode {
    const n = this.nodes[index - 1];
    if (!n) throw new Error(`the cluster has no node ${index}`);
    return n;
  }

  /** `rabbitmqctl -n <node> ...args` (or another CLI of the package, e.g. rabbitmq-queues). */
  async ctl(index: number, args: string[], tool = 'rabbitmqctl', timeoutMs = 120_000): Promise<string> {
    const { stdout } = await run(path.join(this.bin, tool), ['-n', this.node(index).name, ...args], { env: this.env(index), timeout: timeoutMs });
    return stdout;
  }

  /** Starts node `index` (again, after a stop or a kill: it rejoins by itself) and waits until it has booted. */
  async startNode(index: number): Promise<void> {
    const n = this.node(index);
    fs.rmSync(n.pidFile, { force: true });
    const out = fs.openSync(path.join(n.dir, 'stdout.log'), 'a');
    const child = spawn(path.join(this.bin, 'rabbitmq-server'), [], { env: this.env(index), detached: true, stdio: ['ignore', out, out] });
    child.unref();
    fs.closeSync(out);
    await this.ctl(index, ['wait', '--timeout', '110', n.pidFile]);
  }

  /** The operating-system pid of node `index`'s Erlang VM, from its pid file. */
  pidOf(index: number): number | undefined {
    try {
      const pid = Number(fs.readFileSync(this.node(index).pidFile, 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** `kill -9` of node `index`'s VM: no goodbye to its clients or its peers. Resolves once the process is gone. */
  async kill9(index: number): Promise<void> {
    const pid = this.pidOf(index);
    if (pid === undefined) throw new Error(`node ${this.node(index).name} has no pid file`);
    process.kill(pid, 'SIGKILL');
    await waitFor(`${this.node(index).name} (pid ${pid}) to die`, () => !alive(pid), 10_000, 20);
  }

  /** Resolves once the management API lists these nodes (by index) as running members of the cluster. */
  async awaitRunning(indexes: number[], timeoutMs = 120_000): Promise<void> {
    const api = new ManagementClient(this.managementUrl);
    const names = indexes.map((i) => this.node(i).name);
    await waitFor(
      `cluster nodes ${names.join(', ')} running`,
      async () => {
        const nodes = await api.listNodes();
        return names.every((name) => nodes.some((n) => n.name === name && n.running));
      },
      timeoutMs,
      500,
    );
  }

  /** Every node's AMQP URL for `vhost`, comma-separated, as `amqp.url` takes them. */
  amqpUrl(vhost: string, credentials = 'guest:guest'): string {
    return this.nodes.map((n) => `amqp://${credentials}@127.0.0.1:${n.amqpPort}/${encodeURIComponent(vhost)}`).join(',');
  }

  /** Every node's management API, comma-separated, as `amqp.managementUrl` takes them. */
  get managementUrl(): string {
    return this.nodes.map((n) => `http://guest:guest@127.0.0.1:${n.managementPort}`).join(',');
  }

  /** The management APIs of these nodes only (by index), comma-separated: the majority's view while a node is cut off. */
  managementUrlOf(indexes: number[]): string {
    return indexes.map((i) => `http://guest:guest@127.0.0.1:${this.node(i).managementPort}`).join(',');
  }

  /** Whether node `index` takes AMQP connections now (a node paused by pause_minority closes its listeners). */
  acceptsAmqp(index: number): Promise<boolean> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port: this.node(index).amqpPort });
      socket.setTimeout(1000);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('timeout', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => resolve(false));
    });
  }

  /** `host:port` of node `index`'s AMQP listener, as Warren's logs and connection names show a node. */
  amqpLabel(index: number): string {
    return `127.0.0.1:${this.node(index).amqpPort}`;
  }

  /**
   * Cuts node `index` off from the others: every packet of the Erlang
   * distribution between it and them is dropped (both directions, so the
   * connections go silent as on a lost network, no reset). Its AMQP and
   * management listeners stay reachable: clients see what the node itself
   * does about the partition.
   */
  cutOff(index: number): void {
    const cut = this.node(index);
    requireIptables();
    this.heal();
    iptables(['-N', PARTITION_CHAIN]);
    this.cutIn = true;
    iptables(['-I', 'INPUT', '1', '-j', PARTITION_CHAIN]);
    for (const other of this.nodes.filter((n) => n.index !== index)) {
      // Its dials to the other's listener, and the other's dials to its listener; each with the replies.
      for (const [from, listener] of [
        [cut, other],
        [other, cut],
      ] as const) {
        iptables(['-A', PARTITION_CHAIN, '-p', 'tcp', '-s', from.distAddress, '-d', '127.0.0.1', '--dport', String(listener.distPort), '-j', 'DROP']);
        iptables(['-A', PARTITION_CHAIN, '-p', 'tcp', '-s', '127.0.0.1', '--sport', String(listener.distPort), '-d', from.distAddress, '-j', 'DROP']);
      }
    }
  }

  /** The rules `cutOff` added, as `iptables -S` prints them (none once healed). */
  partitionRules(): string[] {
    try {
      return execFileSync(...iptablesArgv(['-S', PARTITION_CHAIN]), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
        .split('\n')
        .filter((line) => line.startsWith('-A '));
    } catch {
      return [];
    }
  }

  /** Removes the partition's chain and the jump to it, if there are any; safe to call at any time. */
  heal(): void {
    if (!this.cutIn && !chainExists()) return;
    while (iptablesQuiet(['-D', 'INPUT', '-j', PARTITION_CHAIN])) {
      // one jump removed per call; there is normally one
    }
    iptablesQuiet(['-F', PARTITION_CHAIN]);
    iptablesQuiet(['-X', PARTITION_CHAIN]);
    this.cutIn = chainExists();
    if (this.cutIn)
      throw new Error(
        `iptables chain ${PARTITION_CHAIN} could not be removed: remove it by hand (iptables -D INPUT -j ${PARTITION_CHAIN}; iptables -F ${PARTITION_CHAIN}; iptables -X ${PARTITION_CHAIN})`,
      );
  }

  /** Stops every node that runs (kills one that does not stop), then removes the directory. */
  async stop(): Promise<void> {
    this.heal();
    await Promise.all(
      this.nodes.map(async (n) => {
        const pid = this.pidOf(n.index);
        if (pid === undefined || !alive(pid)) return;
        await this.ctl(n.index, ['stop'], 'rabbitmqctl', 60_000).catch(() => undefined);
        if (alive(pid)) process.kill(pid, 'SIGKILL');
      }),
    );
    this.removeDir();
    running.delete(this);
  }

  /** On exit: no time to ask the nodes, so they are killed. */
  killNow(): void {
    try {
      this.heal();
    } catch (err) {
      console.error((err as Error).message);
    }
    for (const n of this.nodes) {
      const pid = this.pidOf(n.index);
      if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
    }
    this.removeDir();
    running.delete(this);
  }

  private removeDir(): void {
    // WARREN_TEST_CLUSTER_LOGS=<dir> keeps each node's logs there (c1/, c2/, ...) for a look after the run.
    const keep = process.env.WARREN_TEST_CLUSTER_LOGS;
    if (keep) {
      for (const n of this.nodes) {
        const logs = path.join(n.dir, 'log');
        if (fs.existsSync(logs)) fs.cpSync(logs, path.join(keep, `c${n.index}`), { recursive: true });
      }
    }
    // The cookie is read-only; rmSync's force removes it all the same.
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** iptables itself when this process is root, else through `sudo -n` (as .ci/run installs packages). */
function iptablesArgv(args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['iptables', ['-w', ...args]] : ['sudo', ['-n', 'iptables', '-w', ...args]];
}

function requireIptables(): void {
  try {
    execFileSync(...iptablesArgv(['-S', 'INPUT']), { stdio: 'ignore' });
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(
      missing
        ? "iptables is not installed: the partition scenario drops a node's distribution traffic with it (apt-get install -y iptables)"
        : `iptables cannot read the INPUT chain (${(err as Error).message.split('\n')[0]}): the partition scenario needs root with CAP_NET_ADMIN (or sudo without a password)`,
    );
  }
}

function iptables(args: string[]): void {
  execFileSync(...iptablesArgv(args), { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** `iptables args`, true when it succeeded; for removals that may find nothing to remove. */
function iptablesQuiet(args: string[]): boolean {
  try {
    iptables(args);
    return true;
  } catch {
    return false;
  }
}

function chainExists(): boolean {
  try {
    execFileSync(...iptablesArgv(['-S', PARTITION_CHAIN]), { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
