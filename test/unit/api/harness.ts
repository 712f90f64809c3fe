import fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Knex } from 'knex';
import { createApp, type AppDeps, type ReadinessCheck } from '../../../src/api/app';
import { type Config } from '../../../src/config';
import { openDatabase } from '../../../src/db/knex';
import { migrateService, loadConfig } from '../../../src/services';
import { createLogger } from '../../../src/log';
import { NotificationHub } from '../../../src/api/notificationHub';
import { GroupCommit } from '../../../src/db/groupCommit';
import type { TimelineSource } from '../../../src/api/timelineClient';
import { referenceTimeline } from '../../support/referenceTimeline';

/**
 * The API in-process on port 0 over a fresh, migrated SQLite directory
 * (api, analytics and notifications), with collaborators a test can steer.
 */
export interface ApiHarness {
  url: string;
  db: Knex;
  config: Config;
  deps: AppDeps;
  /** Open notification streams; a test publishes live notifications into it as the broker subscription would. */
  hub: NotificationHub;
  /** Counts onEventsWritten calls. */
  wakeups: number;
  backlog: number;
  checks: ReadinessCheck[] | Error;
  clock: Date | null;
  /** The app's writer (its group commit over `db`). */
  writes: GroupCommit;
  /** What deps.draining() answers (a SIGTERM under way). */
  draining: boolean;
  /** Where GET /users/:id/timeline asks: by default the old query over the API's tables, standing in for the timeline service. */
  timeline: TimelineSource;
  request(method: string, path: string, opts?: RequestOptions): Promise<ApiResponse>;
  close(): Promise<void>;
}

export interface RequestOptions {
  body?: unknown;
  token?: string;
  headers?: Record<string, string>;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a response body is whatever JSON the route returned, and tests assert on its shape field by field
  body: any;
}

export async function startApi(overrides: Partial<Config> = {}): Promise<ApiHarness> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-api-'));
  // The SQLite driver may be chosen for the whole run (scripts/test.sh runs these tests on each).
  const driver = process.env.WARREN_DATABASE_SQLITE_DRIVER;
  const loaded = loadConfig({ NODE_ENV: 'test', WARREN_DATABASE_DIR: dir, ...(driver ? { WARREN_DATABASE_SQLITE_DRIVER: driver } : {}) });
  const config: Config = { ...loaded, ...overrides };
  // The read models first, so the api connection attaches files that already have their tables.
  for (const service of ['analytics', 'notifications'] as const) {
    const own = openDatabase(config, service);
    await migrateService(own, service, config);
    await own.destroy();
  }
  // The writer as `warren api` opens it (under the default driver, on a thread of its own).
  const db = openDatabase(config, 'api', { attachReadModels: true, writer: true });
  await migrateService(db, 'api', config);

  const harness = {
    url: '',
    db,
    config,
    wakeups: 0,
    backlog: 0,
    checks: [] as ReadinessCheck[] | Error,
    clock: null as Date | null,
    hub: new NotificationHub(),
    writes: new GroupCommit(db),
    draining: false,
  } as ApiHarness;
  harness.timeline = referenceTimeline(db);
  // As `warren api` opens them: requests read through a read-only pool, every write goes through the writer.
  const readers = openDatabase(config, 'api', { attachReadModels: true, readers: 2 });
  const deps: AppDeps = {
    config,
    db: readers,
    writeDb: db,
    writes: harness.writes,
    draining: () => harness.draining,
    log: createLogger('api-test', 'silent'),
    onEventsWritten: () => {
      harness.wakeups++;
    },
    outboxBacklog: () => harness.backlog,
    readiness: async () => {
      if (harness.checks instanceof Error) throw harness.checks;
      return harness.checks;
    },
    now: () => harness.clock ?? new Date(),
    liveNotifications: harness.hub,
    timeline: { page: (userId, query) => harness.timeline.page(userId, query), close: async () => undefined },
    streamHeartbeatMs: 200,
  };
  harness.deps = deps;
  const server: Server = createApp(deps).listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  harness.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  harness.request = async (method, urlPath, opts = {}) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await fetch(harness.url + urlPath, { method, headers, body });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  };
  harness.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await readers.destroy();
    await db.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return harness;
}

let handles = 0;

/** A unique, valid handle per call. */
export function freshHandle(prefix = 'user'): string {
  handles++;
  return `${prefix}_${process.pid % 10000}_${handles}`;
}

export async function createUser(api: ApiHarness, handle = freshHandle()): Promise<{ id: string; handle: string; token: string }> {
  const res = await api.request('POST', '/users', { body: { handle, displayName: `Name of ${handle}` } });
  if (res.status !== 201) throw new Error(`creating ${handle} answered ${res.status}: ${JSON.stringify(res.body)}`);
  return { id: res.body.user.id, handle: res.body.user.handle, token: res.body.token };
}

export async function outboxRows(api: ApiHarness, type?: string): Promise<{ type: string; payload: string; correlation_id: string | null }[]> {
  const query = api.db('outbox').select('type', 'payload', 'correlation_id').orderBy('seq');
  if (type) query.where({ type });
  return query;
}
