import { childPids, freePort, rssOf, type BenchSystem, type Proc, type Store } from './system';
import { openReader, outboxBacklog, scalar, type Reader } from './reader';
import { pollUntil } from './stats';
import { signUpUsers } from './users';

export interface RssSnapshot {
  label: string;
  api: number;
  worker: number;
}

/**
 * Warren as `warren start` runs it: one supervisor applying the topology,
 * migrating, then running the API (with its outbox relay) and every worker,
 * on default configuration. The benchmark's users are created through the API.
 */
export class Deployment {
  readonly snapshots: RssSnapshot[] = [];
  tokens: string[] = [];
  private api!: Reader;
  private analytics!: Reader;

  private constructor(
    readonly sys: BenchSystem,
    readonly store: Store,
    readonly supervisor: Proc,
    readonly port: number,
  ) {}

  static async start(
    sys: BenchSystem,
    store: Store,
    opts: { amqpUrl?: string; users?: number; extraEnv?: NodeJS.ProcessEnv; cli?: string } = {},
  ): Promise<Deployment> {
    const port = await freePort();
    // The timeline instance and the console `warren start` runs listen on ports of their own too, so deployments run side by side.
    const [timelinePort, timelineGrpcPort, consolePort] = [await freePort(), await freePort(), await freePort()];
    const ports = {
      WARREN_HTTP_PORT: String(port),
      WARREN_TIMELINE_PORT: String(timelinePort),
      WARREN_TIMELINE_GRPC_PORT: String(timelineGrpcPort),
      WARREN_CONSOLE_PORT: String(consolePort),
    };
    const supervisor = sys.warren(['start'], store, { ...ports, ...opts.extraEnv }, { amqpUrl: opts.amqpUrl, cli: opts.cli });
    const dep = new Deployment(sys, store, supervisor, port);
    try {
      await sys.waitHttp(port, 60_000);
      // Ready means the broker, the topology and each work queue's consumers are there.
      const ready = await pollUntil(async () => (await fetch(`${dep.baseUrl}/readyz`)).ok, 60_000, 200);
      if (!ready) throw new Error('the deployment did not become ready within 60 s');
      dep.api = openReader(store, 'api');
      dep.analytics = openReader(store, 'analytics');
      dep.tokens.push(...(await signUpUsers(dep.baseUrl, opts.users ?? 20, `bench_${store.label.replace(/[^A-Za-z0-9_]/g, '')}`)));
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${supervisor.tail(20)}`);
    }
    return dep;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  pids(): { api?: number; worker?: number; notifications?: number } {
    return {
      api: childPids(this.supervisor.pid, 'cli.js api')[0],
      worker: childPids(this.supervisor.pid, 'cli.js worker analytics')[0],
      notifications: childPids(this.supervisor.pid, 'cli.js worker notifications')[0],
    };
  }

  rss(): { api: number; worker: number } {
    const { api, worker } = this.pids();
    return { api: api ? rssOf(api) : NaN, worker: worker ? rssOf(worker) : NaN };
  }

  snapshot(label: string): RssSnapshot {
    const s = { label, ...this.rss() };
    this.snapshots.push(s);
    return s;
  }

  backlog(): Promise<number> {
    return outboxBacklog(this.api);
  }

  apiReader(): Reader {
    return this.api;
  }

  /** Tweets written vs counted by analytics. */
  async progress(): Promise<{ tweets: number; counted: number; backlog: number }> {
    const [tweets, counted, backlog] = await Promise.all([
      scalar(this.api, "SELECT count(*) AS n FROM outbox WHERE type = 'tweet.created'"),
      scalar(this.analytics, 'SELECT count(*) AS n FROM processed_messages'),
      this.backlog(),
    ]);
    return { tweets, counted, backlog };
  }

  /** Waits until every tweet is relayed and counted; false when `timeoutMs` passed first. */
  async drained(timeoutMs: number): Promise<boolean> {
    const ok = await pollUntil(
      async () => {
        const p = await this.progress();
        return p.backlog === 0 && p.counted >= p.tweets;
      },
      timeoutMs,
      250,
    );
    return ok === true;
  }

  async stop(): Promise<void> {
    await this.api?.close().catch(() => undefined);
    await this.analytics?.close().catch(() => undefined);
    await this.supervisor.stop(40_000);
  }
}

/** Samples something every `everyMs` until stopped (queue depth, backlog, RSS over time). */
export class Sampler<T> {
  readonly samples: ({ t: number } & T)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private readonly t0 = Date.now();

  constructor(
    private readonly sample: () => Promise<T>,
    private readonly everyMs = 1000,
  ) {}

  start(): this {
    const tick = async () => {
      if (this.busy) return;
      this.busy = true;
      try {
        this.samples.push({ t: (Date.now() - this.t0) / 1000, ...(await this.sample()) });
      } catch {
        // a missed sample is only a gap in the series
      } finally {
        this.busy = false;
      }
    };
    void tick();
    this.timer = setInterval(() => void tick(), this.everyMs);
    return this;
  }

  stop(): ({ t: number } & T)[] {
    clearInterval(this.timer);
    return this.samples;
  }
}
