import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import { type Config } from '../../src/config';
import { ManagementClient } from '../../src/topology/management';
import { applyTopology, loadDefinitions, retargetDefinitions } from '../../src/topology/definitions';
import { migrateAll, loadConfig } from '../../src/services';
import { workers, type WorkerName } from '../../src/workers/registry';
import { queueStats } from './amqp';
import { healBroker } from './broker';
import { createLogger } from '../../src/log';
import { waitFor } from './wait';
import { ChildHandle, freePort, localServices } from './harness';

export { freePort, waitFor };

/**
 * An isolated Warren for one integration suite: its own vhost (topology
 * applied from rabbitmq/definitions.json), its own database (a temp SQLite
 * directory, or a fresh PostgreSQL database when WARREN_TEST_DB=postgres),
 * its own HTTP port; real `warren` processes started and stopped by the test.
 */
const services = localServices('WARREN_TEST');
export const MANAGEMENT_URL = services.managementUrl;
export const AMQP_BASE = services.amqpBase;
export const PG_ADMIN_URL = services.pgAdminUrl;
export const TEST_DB = process.env.WARREN_TEST_DB === 'postgres' ? 'postgres' : 'sqlite';

const cli = path.resolve(__dirname, '..', '..', 'src', 'cli.js');

export function amqpUrlFor(vhost: string): string {
  return `${AMQP_BASE}/${encodeURIComponent(vhost)}`;
}

/** The broker a TestSystem runs on: the machine's, or a cluster of the test's own (test/support/cluster.ts), each node listed. */
export interface TestBroker {
  managementUrl: string;
  amqpUrlFor(vhost: string): string;
}

const LOCAL_BROKER: TestBroker = { managementUrl: MANAGEMENT_URL, amqpUrlFor };

export class WarrenProcess extends ChildHandle {
  readonly output: string[] = [];

  constructor(name: string, child: ChildProcess) {
    super(name, child, 15_000);
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n')) if (line) this.output.push(line);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
  }

  tail(n = 30): string {
    return this.output.slice(-n).join('\n');
  }
}

export class TestSystem {
  readonly vhost = `warren-it-${crypto.randomBytes(4).toString('hex')}`;
  readonly management: ManagementClient;
  readonly processes: WarrenProcess[] = [];
  env: NodeJS.ProcessEnv = {};
  config!: Config;
  port = 0;
  /** Where this system's timeline service listens; the API is pointed at it. */
  timelinePort = 0;
  private dataDir = '';
  private pgDatabase = '';

  constructor(readonly broker: TestBroker = LOCAL_BROKER) {
    this.management = new ManagementClient(broker.managementUrl);
  }

  get amqpUrl(): string {
    return this.broker.amqpUrlFor(this.vhost);
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get timelineUrl(): string {
    return `http://127.0.0.1:${this.timelinePort}`;
  }

  /** Creates the vhost (topology applied) and the database (migrated). */
  async setUp(extraConfig: Record<string, unknown> = {}): Promise<void> {
    this.port = await freePort();
    this.timelinePort = await freePort();
    const timelineGrpcPort = await freePort();
    this.env = {
      ...process.env,
      NODE_ENV: 'test',
      WARREN_AMQP_URL: this.amqpUrl,
      WARREN_AMQP_MANAGEMENT_URL: this.broker.managementUrl,
      WARREN_HTTP_PORT: String(this.port),
      WARREN_TIMELINE_PORT: String(this.timelinePort),
      WARREN_TIMELINE_URLS: this.timelineUrl,
      WARREN_TIMELINE_GRPC_PORT: String(timelineGrpcPort),
      WARREN_TIMELINE_GRPC_URLS: `http://127.0.0.1:${timelineGrpcPort}`,
      WARREN_CONFIG: JSON.stringify(extraConfig),
    };
    if (TEST_DB === 'postgres') {
      this.pgDatabase = `warren_it_${crypto.randomBytes(4).toString('hex')}`;
      const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL });
      await admin.raw(`CREATE DATABASE ${this.pgDatabase}`);
      await admin.destroy();
      const url = new URL(PG_ADMIN_URL);
      url.pathname = `/${this.pgDatabase}`;
      Object.assign(this.env, { WARREN_DATABASE_CLIENT: 'postgres', WARREN_DATABASE_URL: url.toString() });
    } else {
      this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-it-'));
      Object.assign(this.env, { WARREN_DATABASE_CLIENT: 'sqlite', WARREN_DATABASE_DIR: this.dataDir });
    }
    this.config = loadConfig(this.env);
    const defs = retargetDefinitions(loadDefinitions(this.config.amqp.definitionsFile), this.vhost);
    const apply = () => applyTopology({ managementUrl: this.broker.managementUrl, vhost: this.vhost, defs, log: createLogger('test-topology', 'warn') });
    try {
      await apply();
    } catch (err) {
      // A vhost deleted while the node was still recovering it (a suite that restarted the broker, then tore down) can crash
      // the quorum queues' dead-letter workers until their supervisor gives up; only a node restart brings it back.
      if (this.broker !== LOCAL_BROKER || !String((err as Error).message).includes('rabbit_fifo_dlx_sup') || !(await healBroker())) throw err;
      await apply();
    }
    await migrateAll(this.config);
  }

  start(args: string[], extraEnv: NodeJS.ProcessEnv = {}): WarrenProcess {
    const name = args.join(' ');
    const child = spawn(process.execPath, ['--enable-source-maps', cli, ...args], { env: { ...this.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    const proc = new WarrenProcess(name, child);
    this.processes.push(proc);
    return proc;
  }

  async startApi(): Promise<WarrenProcess> {
    const api = this.start(['api']);
    await waitFor('the API to listen', async () => (await fetch(`${this.baseUrl}/healthz`)).ok, 20_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${api.tail()}`);
    });
    return api;
  }

  /**
   * Starts a worker and waits until it says it consumes (its own /readyz, on
   * a health port of its own). The queue's consumer count cannot tell: a
   * worker opening up from one delivery at a time to its full prefetch
   * subscribes anew before it cancels, so the count moves on its own.
   */
  async startWorker(name: WorkerName, extraEnv: NodeJS.ProcessEnv = {}): Promise<WarrenProcess> {
    const { queue, http } = workers[name];
    // The timeline service serves its probes on its own port (this system's timelinePort); the others on a health port.
    const healthPort = http ? this.timelinePort : await freePort();
    const env = http ? { ...extraEnv } : { WARREN_WORKER_HEALTH_PORT: String(healthPort), ...extraEnv };
    // A test that configures the port itself (WARREN_CONFIG wins over the variable) is waited for by the count.
    const config = loadConfig({ ...this.env, ...env });
    const own = (http ? http.listen(config).port : config.worker.healthPort) === healthPort;
    const before = own ? 0 : await this.consumers(queue);
    const worker = this.start(['worker', name], env);
    const consuming = own
      ? async () => ((await (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).json()) as { consuming?: boolean }).consuming === true
      : async () => (await this.consumers(queue)) > before;
    await waitFor(`worker ${name} to consume`, consuming, 20_000).catch((err) => {
      throw new Error(`${(err as Error).message}\n${worker.tail()}`);
    });
    return worker;
  }

  async request(method: string, urlPath: string, opts: { body?: unknown; token?: string; headers?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.body !== undefined) headers['content-type'] ??= 'application/json';
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    const res = await fetch(`${this.baseUrl}${urlPath}`, {
      method,
      headers,
      body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
    });
    const text = await res.text();
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- test responses are JSON of many shapes, asserted field by field
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, json, text };
  }

  async createUser(handle: string, displayName = handle): Promise<{ id: string; token: string }> {
    const res = await this.request('POST', '/users', { body: { handle, displayName } });
    if (res.status !== 201) throw new Error(`POST /users answered ${res.status}: ${res.text}`);
    return { id: res.json.user.id, token: res.json.token };
  }

  async queueDepth(queue: string): Promise<number> {
    return (await queueStats(this.amqpUrl, queue)).messages;
  }

  async consumers(queue: string): Promise<number> {
    return (await queueStats(this.amqpUrl, queue)).consumers;
  }

  async tearDown(): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop(10_000).catch(() => undefined)));
    await this.management.deleteVhost(this.vhost).catch(() => undefined);
    if (this.pgDatabase) {
      const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL });
      await admin.raw(`DROP DATABASE IF EXISTS ${this.pgDatabase} WITH (FORCE)`).catch(() => undefined);
      await admin.destroy();
    }
    if (this.dataDir) fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}
