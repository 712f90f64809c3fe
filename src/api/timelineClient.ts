/** @file The API's client of the timeline service: a deadline, one retry elsewhere, a circuit per instance and discovery, over REST (undici pools) or gRPC. */
import dns from 'node:dns';
import net from 'node:net';
import { Pool } from 'undici';
import { UnavailableError } from '../domain/errors';
import type { Tweet } from '../db/repositories/tweets';
import type { Logger } from '../log';

/** A page of a home timeline, as the API answers it. */
export interface TimelinePage {
  items: Tweet[];
  nextCursor: string | null;
}

/** Where the API gets a home timeline from: the timeline service, never its own tables. */
export interface TimelineSource {
  page(userId: string, query: { limit: number; before?: string }): Promise<TimelinePage>;
  close(): Promise<void>;
}

/** One instance's connection, whatever the protocol: it asks for a page, giving up when `signal` aborts. */
export interface TimelineConnection {
  /** The page as the instance answered it (checked by the client). */
  page(userId: string, query: { limit: number; before?: string }, signal: AbortSignal): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * How the client talks to an instance (timeline.protocol): REST by default
 * (restTransport), gRPC in src/api/timelineGrpcClient.ts. The deadline, the
 * retry, the circuit and discovery are the client's, the same for both.
 */
export interface TimelineTransport {
  /** A connection to the instance at `base` (by address once resolved), naming itself `host` (the configured host and port). */
  connect(base: URL, host: string, opts: { connections: number }): TimelineConnection;
}

export interface TimelineClientOptions {
  /** Base URLs of the instances (timeline.urls, or timeline.grpcUrls for gRPC). */
  urls: string[];
  /** REST (the default) or gRPC. */
  transport?: TimelineTransport;
  /** The whole call's deadline, the retry included (timeline.deadlineMs). */
  deadlineMs: number;
  log: Logger;
  /** Consecutive failures that set an instance aside (default 3). */
  failuresToOpen?: number;
  /** How long an instance set aside is skipped before one call tries it again (default 5 s). */
  openMs?: number;
  /** Keep-alive connections per instance over REST (default 32; gRPC multiplexes calls on one). */
  connections?: number;
  /** What a 503 tells the client to wait, in seconds (default 1). */
  retryAfterSeconds?: number;
  now?: () => number;
  /** Every address of a host name (the system resolver's by default; tests give their own). */
  lookup?: LookupAll;
}

/** All addresses a host name resolves to. */
export type LookupAll = (hostname: string) => Promise<string[]>;

const systemLookup: LookupAll = async (hostname) => (await dns.promises.lookup(hostname, { all: true })).map((a) => a.address);

/** One instance: its connection and its circuit. */
interface Instance {
  /** The configured base URL it comes from (a host name may give several instances). */
  source: string;
  /** Its base URL, by address once its host name is resolved. */
  base: URL;
  /** The configured host (and port), sent as Host whatever address is called. */
  host: string;
  connection: TimelineConnection;
  /** Failures since its last success. */
  failures: number;
  /** While now is before this, it is set aside (the circuit is open); after it, one call may try it. */
  openUntil: number;
}

/** What a failed attempt tells the circuit and the log. */
export class AttemptError extends Error {}

/** REST: GET /timelines/:userId under the base URL, on a keep-alive undici pool. */
export const restTransport: TimelineTransport = {
  connect(base, host, { connections }) {
    const pool = new Pool(base.origin, { connections, keepAliveTimeout: 30_000 });
    return {
      async page(userId, query, signal) {
        const params = new URLSearchParams({ limit: String(query.limit) });
        if (query.before !== undefined) params.set('before', query.before);
        const path = `${base.pathname}timelines/${encodeURIComponent(userId)}?${params}`;
        const res = await pool.request({ path, method: 'GET', signal, headers: { accept: 'application/json', host } });
        const text = await res.body.text();
        if (res.statusCode !== 200) throw new AttemptError(`answered ${res.statusCode}`);
        return JSON.parse(text) as unknown;
      },
      close: () => pool.close(),
    };
  },
};

/**
 * Asks the timeline service for a page, within `deadlineMs`: on an instance
 * chosen round-robin among those not set aside, and if that one fails (no
 * connection, an error status, no answer in its share of the deadline) once
 * more on another. An instance that fails `failuresToOpen` times in a row is
 * set aside for `openMs`, then given one call again. When no instance
 * answers, UnavailableError (503 with Retry-After): the API never answers
 * from its own tables, and never waits past the deadline.
 */
export class TimelineClient implements TimelineSource {
  private instances: Instance[];
  private next = 0;
  private readonly now: () => number;
  private discovery?: NodeJS.Timeout;

  constructor(private readonly opts: TimelineClientOptions) {
    if (opts.urls.length === 0) throw new Error('timeline client: no instance URL');
    this.now = opts.now ?? Date.now;
    // Until the first resolution, each URL is one instance (undici resolves its host name itself).
    this.instances = opts.urls.map((url) => this.instance(url, url));
  }

  private instance(source: string, url: string): Instance {
    const base = new URL(url.endsWith('/') ? url : `${url}/`);
    const host = new URL(source).host;
    return {
      source,
      base,
      host,
      connection: (this.opts.transport ?? restTransport).connect(base, host, { connections: this.opts.connections ?? 32 }),
      failures: 0,
      openUntil: 0,
    };
  }

  /**
   * Discovery: resolves each URL's host name now and every `everyMs`; each
   * address is an instance of its own (a compose service name resolves to
   * every replica). An instance that stays keeps its circuit; one whose
   * address is gone is closed. A host name that does not resolve keeps the
   * instances it had.
   */
  startDiscovery(everyMs: number): Promise<void> {
    this.discovery = setInterval(() => void this.refresh(), everyMs);
    this.discovery.unref();
    return this.refresh();
  }

  /** One round of discovery (see startDiscovery). */
  async refresh(): Promise<void> {
    const lookup = this.opts.lookup ?? systemLookup;
    const nextInstances: Instance[] = [];
    for (const source of this.opts.urls) {
      const url = new URL(source);
      const bare = url.hostname.replace(/^\[|\]$/g, '');
      let addresses: string[];
      try {
        addresses = net.isIP(bare) ? [bare] : [...new Set(await lookup(bare))];
      } catch (err) {
        this.opts.log.warn({ url: source, err }, 'timeline instances not resolved; keeping the ones known');
        nextInstances.push(...this.instances.filter((i) => i.source === source));
        continue;
      }
      for (const address of addresses) {
        const byAddress = new URL(source);
        byAddress.hostname = net.isIPv6(address) ? `[${address}]` : address;
        const key = byAddress.toString().replace(/\/?$/, '/');
        nextInstances.push(this.instances.find((i) => i.source === source && i.base.toString() === key) ?? this.instance(source, byAddress.toString()));
      }
    }
    const gone = this.instances.filter((i) => !nextInstances.includes(i));
    const changed = gone.length > 0 || nextInstances.some((i) => !this.instances.includes(i));
    this.instances = nextInstances;
    if (changed) this.opts.log.info({ instances: nextInstances.map((i) => i.base.origin) }, 'timeline instances discovered');
    for (const i of gone) i.connection.close().catch(() => undefined);
  }

  async page(userId: string, query: { limit: number; before?: string }): Promise<TimelinePage> {
    const deadline = this.now() + this.opts.deadlineMs;
    // The first attempt and at most one retry, each on an instance of its own.
    const chosen = this.choose(2);
    const errors: string[] = [];
    for (const [attempt, instance] of chosen.entries()) {
      const remaining = deadline - this.now();
      if (remaining <= 0) break;
      // With another instance to retry on, the first attempt takes half of what is left, so the retry has time too.
      const budget = attempt === 0 && chosen.length > 1 ? Math.max(1, Math.floor(remaining / 2)) : remaining;
      try {
        const page = await this.ask(instance, userId, query, budget);
        instance.failures = 0;
        instance.openUntil = 0;
        return page;
      } catch (err) {
        this.failed(instance);
        errors.push(`${instance.base.origin}: ${(err as Error).message}`);
      }
    }
    this.opts.log.warn({ userId, errors, setAside: this.instances.length - chosen.length }, 'no timeline service instance answered');
    throw new UnavailableError('the timeline service did not answer; try again shortly', this.opts.retryAfterSeconds ?? 1, 'timeline_unavailable');
  }

  /**
   * Up to `count` instances not set aside, starting one further round the
   * list on each call (round-robin). An instance whose time set aside is
   * over is a candidate again: its next failure sets it aside at once.
   */
  private choose(count: number): Instance[] {
    const now = this.now();
    const n = this.instances.length;
    const start = this.next;
    this.next = (this.next + 1) % n;
    const out: Instance[] = [];
    for (let i = 0; i < n && out.length < count; i++) {
      const candidate = this.instances[(start + i) % n]!;
      if (candidate.openUntil <= now) out.push(candidate);
    }
    return out;
  }

  private failed(instance: Instance): void {
    instance.failures++;
    const limit = this.opts.failuresToOpen ?? 3;
    if (instance.failures >= limit) {
      if (instance.openUntil <= this.now()) this.opts.log.warn({ instance: instance.base.origin, failures: instance.failures }, 'timeline instance set aside');
      instance.openUntil = this.now() + (this.opts.openMs ?? 5000);
    }
  }

  private async ask(instance: Instance, userId: string, query: { limit: number; before?: string }, budgetMs: number): Promise<TimelinePage> {
    const signal = AbortSignal.timeout(budgetMs);
    try {
      const page = (await instance.connection.page(userId, query, signal)) as TimelinePage | undefined;
      if (!Array.isArray(page?.items) || (page.nextCursor !== null && typeof page.nextCursor !== 'string'))
        throw new AttemptError('answered something that is not a page');
      return page;
    } catch (err) {
      if (signal.aborted) throw new AttemptError(`no answer within ${budgetMs} ms`);
      throw err;
    }
  }

  /** The instances as the client sees them now (for /readyz): each base URL, and whether it is set aside. */
  status(): { url: string; setAside: boolean }[] {
    const now = this.now();
    return this.instances.map((i) => ({ url: i.base.origin, setAside: i.openUntil > now }));
  }

  async close(): Promise<void> {
    clearInterval(this.discovery);
    await Promise.all(this.instances.map((i) => i.connection.close()));
  }
}
