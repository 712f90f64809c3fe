import type { TestSystem } from '../../support/system';
import { loadTweetText } from './books';

export interface LoadOptions {
  /** Writes per second across all clients. */
  ratePerSecond: number;
  /** How long the load runs. */
  durationMs: number;
  /** Share of writes that are profile changes (the rest are tweets). */
  profileShare?: number;
  users?: number;
}

export interface LoadFigures {
  attempted: number;
  acceptedTweets: number;
  acceptedProfileChanges: number;
  /** Responses other than success, by status (0 = no answer: connection refused or reset). */
  refused: Record<string, number>;
  /** Accepted writes per user id, to check the books per user. */
  tweetsByUser: Map<string, number>;
  changesByUser: Map<string, number>;
  /** What identifies each accepted write in its event: the tweet's id, the profile change's new display name (unique per write). */
  acceptedTweetIds: string[];
  acceptedDisplayNames: string[];
}

interface LoadUser {
  id: string;
  token: string;
  changes: number;
}

/**
 * A steady, bounded load of HTTP writes, the way clients would send it:
 * tweets and profile changes at a fixed rate for a fixed time. A write
 * counts as accepted only when the API answered 201/200; anything else is
 * not the API's promise, and is tallied by status.
 */
export class Load {
  readonly figures: LoadFigures = {
    attempted: 0,
    acceptedTweets: 0,
    acceptedProfileChanges: 0,
    refused: {},
    tweetsByUser: new Map(),
    changesByUser: new Map(),
    acceptedTweetIds: [],
    acceptedDisplayNames: [],
  };
  private users: LoadUser[] = [];
  /** Unique to this load: its users' handles and its tweets' ledger tags carry it. */
  private tag = '';
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly sys: TestSystem,
    private readonly opts: LoadOptions,
  ) {}

  async prepare(): Promise<void> {
    const n = this.opts.users ?? 10;
    this.tag = Date.now().toString(36).slice(-6);
    for (let i = 0; i < n; i++) {
      const u = await this.sys.createUser(`load_${this.tag}_${i}`);
      this.users.push({ ...u, changes: 0 });
    }
  }

  start(): void {
    this.running = this.run();
  }

  /** Resolves when the load has run its course (or was stopped). */
  async finished(): Promise<LoadFigures> {
    await this.running;
    return this.figures;
  }

  stop(): void {
    this.stopped = true;
  }

  private async run(): Promise<void> {
    const { ratePerSecond, durationMs } = this.opts;
    const total = Math.round((ratePerSecond * durationMs) / 1000);
    const started = Date.now();
    const inFlight = new Set<Promise<void>>();
    for (let i = 0; i < total && !this.stopped; i++) {
      const due = started + (i * 1000) / ratePerSecond;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // Bounded: a stalled API does not pile up unbounded client requests.
      if (inFlight.size >= 64) await Promise.race(inFlight);
      const p = this.writeOne(i).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await Promise.all(inFlight);
  }

  private async writeOne(i: number): Promise<void> {
    const user = this.users[i % this.users.length]!;
    const profile = Math.random() < (this.opts.profileShare ?? 0.2);
    this.figures.attempted++;
    let status = 0;
    try {
      if (profile) {
        user.changes++;
        const displayName = `load ${user.changes} ${i}`;
        const res = await this.sys.request('PATCH', `/users/${user.id}`, { token: user.token, body: { displayName } });
        status = res.status;
        if (status === 200) {
          this.figures.acceptedProfileChanges++;
          this.figures.acceptedDisplayNames.push(displayName);
          this.figures.changesByUser.set(user.id, (this.figures.changesByUser.get(user.id) ?? 0) + 1);
        }
      } else {
        const res = await this.sys.request('POST', '/tweets', { token: user.token, body: { text: loadTweetText(this.tag, i) } });
        status = res.status;
        if (status === 201) {
          this.figures.acceptedTweets++;
          this.figures.acceptedTweetIds.push(String(res.json.id));
          this.figures.tweetsByUser.set(user.id, (this.figures.tweetsByUser.get(user.id) ?? 0) + 1);
        }
      }
    } catch {
      status = 0;
    }
    if (status !== 200 && status !== 201) this.figures.refused[status] = (this.figures.refused[status] ?? 0) + 1;
  }
}
