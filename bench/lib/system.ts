import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import amqplib from 'amqplib';
import knexFactory from 'knex';
import { type Config } from '../../src/config';
import { ManagementClient } from '../../src/topology/management';
import { applyTopology, loadDefinitions, retargetDefinitions } from '../../src/topology/definitions';
import { migrateAll, loadConfig } from '../../src/services';
import { createLogger } from '../../src/log';
import { pollUntil, sleep } from './stats';
import { ChildHandle, freePort, localServices } from '../../test/support/harness';

/**
 * What the benchmark runs Warren in: its own vhost (topology applied from
 * rabbitmq/definitions.json), fresh SQLite directories or PostgreSQL
 * databases, free ports, and real `warren` processes whose output goes to
 * log files under the run directory (as a deployment would log), never into
 * the benchmark's memory.
 */
const services = localServices('BENCH');
export const MANAGEMENT_URL = services.managementUrl;
export const AMQP_BASE = services.amqpBase;
export const PG_ADMIN_URL = services.pgAdminUrl;

const root = path.resolve(__dirname, '..', '..');
const cli = path.join(root, 'src', 'cli.js');
const toolsDir = path.join(root, 'bench', 'tools');

export { freePort };

export class Proc extends ChildHandle {
  readonly stdout: string[] = [];

  constructor(
    name: string,
    child: ChildProcess,
    readonly logFile: string,
    keepStdout = false,
  ) {
    super(name, child, 20_000);
    const log = fs.createWriteStream(logFile);
    child.stdout?.on('data', (chunk: Buffer) => {
      log.write(chunk);
      if (keepStdout) this.stdout.push(chunk.toString('utf8'));
    });
    child.stderr?.pipe(log);
  }

  tail(n = 15): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
    } catch {
      return '';
    }
  }
}

/** Resident set size of a process from /proc (bytes); NaN once it is gone. */
export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Every process whose command line contains `needle` (the RabbitMQ node's `beam.smp`). */
export function pidsOf(needle: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').includes(needle)) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The direct children of `pid` whose command line contains `needle` (the processes `warren start` supervises). */
export function childPids(pid: number, needle: string): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== pid) continue;
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmd.includes(needle)) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export type DbEnv = Record<string, string>;

export interface Store {
  kind: 'sqlite' | 'postgres';
  label: string;
  env: DbEnv;
  config: Config;
  /** SQLite only: the data directory. */
  dir?: string;
}

export interface WarrenOptions {
  amqpUrl?: string;
  nodeArgs?: string[];
  /** Another build's cli.js (the baseline's), instead of this tree's. */
  cli?: string;
}

/**
 * The previous build, when `BENCH_BASELINE` names a built checkout of it
 * (`scripts/bench.sh --baseline <rev>` prepares one): scenarios that measure
 * a target run it beside this tree's build, so a change is judged on a pair.
 */
export function baselineBuild(): { cli: string; label: string } | undefined {
  const dir = process.env.BENCH_BASELINE;
  if (!dir) return undefined;
  const baseCli = path.join(dir, 'dist', 'src', 'cli.js');
  if (!fs.existsSync(baseCli)) throw new Error(`BENCH_BASELINE=${dir} holds no built Warren (${baseCli} is missing)`);
  return { cli: baseCli, label: process.env.BENCH_BASELINE_LABEL ?? path.basename(dir) };
}

export class BenchSystem {
  readonly vhost = `warren-bench-${crypto.randomBytes(4).toString('hex')}`;
  readonly runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-bench-'));
  readonly management = new ManagementClient(MANAGEMENT_URL);
  private readonly procs: Proc[] = [];
  private readonly pgDatabases: string[] = [];
  private readonly extraVhosts: string[] = [];
  private conn: amqplib.ChannelModel | undefined;
  private seq = 0;

  get amqpUrl(): string {
    return `${AMQP_BASE}/${encodeURIComponent(this.vhost)}`;
  }

  /** Creates the vhost and applies Warren's topology to it. */
  async setUp(): Promise<void> {
    fs.mkdirSync(path.join(this.runDir, 'logs'), { recursive: true });
    await this.applyTopologyTo(this.vhost);
  }

  /**
   * Another vhost with Warren's topology (deleted at tear-down), for a
   * deployment that runs beside the shared one: in the same vhost their
   * workers would compete for each other's messages. Returns its AMQP URL.
   */
  async addVhost(suffix: string): Promise<string> {
    const vhost = `${this.vhost}-${suffix}`;
    this.extraVhosts.push(vhost);
    await this.applyTopologyTo(vhost);
    return `${AMQP_BASE}/${encodeURIComponent(vhost)}`;
  }

  private async applyTopologyTo(vhost: string): Promise<void> {
    const config = loadConfig(this.baseEnv({}));
    const defs = retargetDefinitions(loadDefinitions(config.amqp.definitionsFile), vhost);
    await applyTopology({ managementUrl: MANAGEMENT_URL, vhost, defs, log: createLogger('bench-topology', 'warn') });
  }

  /** The environment of a `warren` process: default configuration (as deployed), this vhost, the given store. */
  baseEnv(extra: DbEnv, amqpUrl = this.amqpUrl): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, WARREN_AMQP_URL: amqpUrl, WARREN_AMQP_MANAGEMENT_URL: MANAGEMENT_URL, ...extra };
    delete env.NODE_ENV;
    delete env.WARREN_CONFIG;
    delete env.NODE_OPTIONS;
    return env;
  }

  /** A fresh, migrated SQLite directory. `extra` may choose a driver. */
  async sqliteStore(label: string, extra: DbEnv = {}): Promise<Store> {
    const dir = path.join(this.runDir, `data-${label}`);
    fs.mkdirSync(dir, { recursive: true });
    const env = { WARREN_DATABASE_CLIENT: 'sqlite', WARREN_DATABASE_DIR: dir, ...extra };
    const config = loadConfig(this.baseEnv(env));
    await migrateAll(config);
    return { kind: 'sqlite', label, env, config, dir };
  }

  /** A fresh, migrated PostgreSQL database (dropped at tear-down). */
  async postgresStore(label: string): Promise<Store> {
    const name = `warren_bench_${crypto.randomBytes(4).toString('hex')}`;
    const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL });
    try {
      await admin.raw(`CREATE DATABASE ${name}`);
    } finally {
      await admin.destroy();
    }
    this.pgDatabases.push(name);
    const url = new URL(PG_ADMIN_URL);
    url.pathname = `/${name}`;
    const env = { WARREN_DATABASE_CLIENT: 'postgres', WARREN_DATABASE_URL: url.toString() };
    const config = loadConfig(this.baseEnv(env));
    await migrateAll(config);
    return { kind: 'postgres', label, env, config };
  }

  private logFile(name: string): string {
    return path.join(this.runDir, 'logs', `${String(++this.seq).padStart(2, '0')}-${name.replace(/[^A-Za-z0-9_.-]+/g, '_')}.log`);
  }

  /** Starts `warren <args>` with the store's environment. */
  warren(args: string[], store: Store, extraEnv: NodeJS.ProcessEnv = {}, opts: WarrenOptions = {}): Proc {
    const env = { ...this.baseEnv(store.env, opts.amqpUrl), ...extraEnv };
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), '--enable-source-maps', opts.cli ?? cli, ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const proc = new Proc(`warren ${args.join(' ')}`, child, this.logFile(`warren-${args.join('-')}-${store.label}`));
    this.procs.push(proc);
    return proc;
  }

  /** Starts a bench tool (bench/tools/<name>.js) in its own process; its last stdout line is its JSON result. */
  tool(name: string, input: unknown, extraEnv: NodeJS.ProcessEnv = {}): Proc {
    const child = spawn(process.execPath, [path.join(toolsDir, `${name}.js`), JSON.stringify(input)], {
      env: { ...process.env, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const proc = new Proc(`tool ${name}`, child, this.logFile(`tool-${name}`), true);
    this.procs.push(proc);
    return proc;
  }

  /** Runs a bench tool to completion and returns its JSON result. */
  async runTool<T>(name: string, input: unknown, extraEnv: NodeJS.ProcessEnv = {}): Promise<T> {
    const proc = this.tool(name, input, extraEnv);
    const code = await proc.waitExit();
    const lines = proc.stdout.join('').trim().split('\n');
    const last = lines[lines.length - 1] ?? '';
    if (code !== 0 || !last.startsWith('{')) throw new Error(`bench tool ${name} failed (exit ${code}):\n${proc.tail()}`);
    return JSON.parse(last) as T;
  }

  /** A bench tool that serves HTTP: resolves once it prints its `{"listening":port}` line. */
  async startServerTool(name: string, input: unknown): Promise<Proc> {
    const proc = this.tool(name, input);
    const ok = await pollUntil(async () => proc.stdout.join('').includes('"listening"') || !proc.running, 20_000, 50);
    if (!ok || !proc.running) throw new Error(`bench tool ${name} did not start:\n${proc.tail()}`);
    return proc;
  }

  async waitHttp(port: number, timeoutMs = 30_000, route = '/healthz'): Promise<void> {
    const ok = await pollUntil(async () => (await fetch(`http://127.0.0.1:${port}${route}`)).ok, timeoutMs, 100);
    if (!ok) throw new Error(`nothing answered on port ${port} within ${timeoutMs} ms`);
  }

  private async channel(): Promise<amqplib.Channel> {
    if (!this.conn) {
      this.conn = await amqplib.connect(this.amqpUrl);
      this.conn.on('error', () => undefined);
      this.conn.on('close', () => (this.conn = undefined));
    }
    const ch = await this.conn.createChannel();
    ch.on('error', () => undefined);
    return ch;
  }

  /** Exact depth (ready messages) and consumers, straight from the broker. */
  async queue(name: string): Promise<{ messages: number; consumers: number }> {
    const ch = await this.channel();
    try {
      const ok = await ch.checkQueue(name);
      return { messages: ok.messageCount, consumers: ok.consumerCount };
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  async purge(queueName: string): Promise<void> {
    const ch = await this.channel();
    try {
      await ch.purgeQueue(queueName);
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /** A quorum queue of the benchmark's own (for the confirm-per-request ceiling). */
  async declareQuorumQueue(name: string): Promise<void> {
    const ch = await this.channel();
    try {
      await ch.assertQueue(name, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.procs.map((p) => p.stop(15_000).catch(() => undefined)));
  }

  async tearDown(keepDir = false): Promise<void> {
    await this.stopAll();
    await this.conn?.close().catch(() => undefined);
    for (const vhost of [this.vhost, ...this.extraVhosts]) await this.management.deleteVhost(vhost).catch(() => undefined);
    for (const name of this.pgDatabases) {
      const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL });
      await admin.raw(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      await admin.destroy();
    }
    // Let the last writers close their files before the directory goes.
    await sleep(100);
    if (!keepDir) fs.rmSync(this.runDir, { recursive: true, force: true });
  }
}
