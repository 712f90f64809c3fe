import fs from 'node:fs';
import { openReader, type Reader } from './reader';
import type { Store } from './system';
import { distribution, nowMs, type Distribution } from './stats';

/**
 * When did each tweet become counted in analytics? The analytics worker
 * writes its inbox record (processed_messages) in the same transaction as
 * the counts, so the record's visibility is the count's. The probe reads the
 * analytics SQLite file read-only every `intervalMs`, asking only for rows
 * newer than the last it saw (by rowid: one writer, so rows appear in rowid
 * order), and stamps each new row with the time its query started: the row
 * was committed after the previous query started and before this one did,
 * so a lag is overstated by at most one period plus one query.
 */
export class LagProbe {
  private readonly reader: Reader;
  private readonly seen = new Map<string, number>();
  private lastRowid = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly queryMs: number[] = [];

  constructor(
    private readonly store: Store,
    private readonly intervalMs = 5,
  ) {
    if (store.kind !== 'sqlite') throw new Error('the lag probe reads the analytics SQLite file');
    this.reader = openReader(store, 'analytics');
  }

  async start(): Promise<void> {
    const rows = await this.reader.all<{ r: number | null }>('SELECT max(rowid) AS r FROM processed_messages');
    this.lastRowid = Number(rows[0]?.r ?? 0);
    this.running = true;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const started = nowMs();
      try {
        const rows = await this.reader.all<{ r: number; m: string }>(
          'SELECT rowid AS r, message_id AS m FROM processed_messages WHERE rowid > ? ORDER BY rowid',
          [this.lastRowid],
        );
        for (const row of rows) {
          this.seen.set(row.m, started);
          this.lastRowid = row.r;
        }
      } catch {
        // busy or checkpointing: the next poll catches up
      }
      const took = nowMs() - started;
      this.queryMs.push(took);
      const wait = this.intervalMs - took;
      await new Promise((r) => setTimeout(r, Math.max(0, wait)));
    }
  }

  get count(): number {
    return this.seen.size;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.reader.close();
  }

  /** Poll count and the mean/p99 cost of one poll (the probe's own overhead). */
  overhead(): { polls: number; meanMs: number; p99Ms: number } {
    const d = distribution(this.queryMs);
    const mean = this.queryMs.reduce((a, b) => a + b, 0) / Math.max(1, this.queryMs.length);
    return { polls: this.queryMs.length, meanMs: mean, p99Ms: d.p99 };
  }

  /**
   * Lags from 201 to counted, for the tweets in `recordFile` ("<tweetId> <ms>"
   * lines from the paced load), matched to their events through the API's
   * outbox (message_id -> tweetId). Tweets not counted yet are `missing`.
   */
  async lags(recordFile: string): Promise<{ lag: Distribution; missing: number; accepted: number }> {
    const answered = new Map<string, number>();
    for (const line of fs.readFileSync(recordFile, 'utf8').split('\n')) {
      const [id, at] = line.split(' ');
      if (id && at) answered.set(id, Number(at));
    }
    const api = openReader(this.store, 'api');
    const lags: number[] = [];
    let missing = 0;
    try {
      const rows = await api.all<{ m: string; t: string }>(
        "SELECT message_id AS m, json_extract(payload, '$.tweetId') AS t FROM outbox WHERE type = 'tweet.created'",
      );
      const messageOf = new Map(rows.map((r) => [r.t, r.m]));
      for (const [tweetId, at] of answered) {
        const m = messageOf.get(tweetId);
        const visible = m === undefined ? undefined : this.seen.get(m);
        if (visible === undefined) missing++;
        else lags.push(visible - at);
      }
    } finally {
      await api.close();
    }
    return { lag: distribution(lags), missing, accepted: answered.size };
  }
}
