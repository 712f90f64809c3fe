/** @file
 * The console's indexer: consumes `warren.parked.index` (a copy of every
 * park) into the console's database. A copy is acked only after the
 * transaction that indexed it committed, on the channel it came on, so a
 * crash redelivers it; indexing the same park twice adds nothing
 * (parkedIndex.ts), so every park is indexed exactly once.
 */
import type { Channel, ConsumeMessage } from 'amqplib';
import type { Knex } from 'knex';
import { ManagedChannel } from '../broker/channel';
import type { BrokerConnection } from '../broker/connection';
import type { Logger } from '../log';
import { indexParks } from './parkedIndex';
import { PARKED_INDEX_QUEUE, parkRecord } from './parkRecord';

export interface ParkIndexerOptions {
  /** A consume-only connection as the console's broker user. */
  connection: BrokerConnection;
  db: Knex;
  log: Logger;
  /** Copies held unacked at once, and so indexed in one transaction at most. */
  prefetch?: number;
  now?: () => number;
}

export interface IndexerStatus {
  consuming: boolean;
  detail: string;
  indexed: number;
  duplicates: number;
}

interface Pending {
  channel: Channel;
  msg: ConsumeMessage;
}

const MAX_RETRY_DELAY_MS = 10_000;

export class ParkIndexer {
  private readonly channel: ManagedChannel<Channel>;
  private readonly closedChannels = new WeakSet<Channel>();
  private pending: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private stopping = false;
  private consumerTag: string | undefined;
  private lastError = '';
  indexed = 0;
  duplicates = 0;

  constructor(private readonly opts: ParkIndexerOptions) {
    const prefetch = opts.prefetch ?? 200;
    this.channel = new ManagedChannel<Channel>({
      connection: opts.connection,
      confirm: false,
      name: `indexer ${PARKED_INDEX_QUEUE}`,
      log: opts.log,
      setup: async (ch) => {
        if (this.stopping) throw new Error('indexer stopping');
        await ch.checkQueue(PARKED_INDEX_QUEUE);
        await ch.prefetch(prefetch);
        const { consumerTag } = await ch.consume(PARKED_INDEX_QUEUE, (msg) => msg && this.receive(ch, msg), { noAck: false });
        this.consumerTag = consumerTag;
      },
      onClose: (ch) => {
        // The broker requeued what this channel held: none of it may be acked any more.
        this.closedChannels.add(ch);
        this.pending = this.pending.filter((p) => p.channel !== ch);
      },
    });
  }

  status(): IndexerStatus {
    const consuming = !this.stopping && this.channel.current() !== undefined;
    const why = this.channel.failure() || (this.opts.connection.isConnected() ? 'subscribing' : 'broker not connected');
    const detail = consuming
      ? this.lastError
        ? `indexing fails: ${this.lastError}`
        : `consuming ${PARKED_INDEX_QUEUE}`
      : `not consuming ${PARKED_INDEX_QUEUE}: ${why}`;
    return { consuming, detail, indexed: this.indexed, duplicates: this.duplicates };
  }

  private receive(channel: Channel, msg: ConsumeMessage): void {
    this.pending.push({ channel, msg });
    // Copies that arrive together are indexed together.
    if (!this.flushing) this.flushing = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.flush());
  }

  private async flush(): Promise<void> {
    try {
      let delay = 200;
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        const live = batch.filter((p) => !this.closedChannels.has(p.channel));
        try {
          const records = live.map((p) => parkRecord({ content: p.msg.content, properties: p.msg.properties, routingKey: p.msg.fields.routingKey }));
          const added = await indexParks(this.opts.db, records, (this.opts.now ?? Date.now)());
          this.indexed += added;
          this.duplicates += records.length - added;
          this.lastError = '';
          delay = 200;
        } catch (err) {
          // Not indexed: kept unacked and tried again, the copies that came meanwhile with them.
          const message = (err as Error).message;
          if (message !== this.lastError) this.opts.log.error({ err, copies: live.length }, 'parked messages not indexed; retrying');
          this.lastError = message;
          this.pending = [...live, ...this.pending];
          if (this.stopping) return;
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, MAX_RETRY_DELAY_MS);
          continue;
        }
        // After the commit, on the channel each came on; a closed one already gave its copies back.
        for (const p of live) {
          if (this.closedChannels.has(p.channel)) continue;
          try {
            p.channel.ack(p.msg);
          } catch {
            this.closedChannels.add(p.channel);
          }
        }
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** Stops taking copies, lets the batch in hand commit and ack, then closes; what is not acked goes back to the queue. */
  async stop(): Promise<void> {
    this.stopping = true;
    const ch = this.channel.current();
    if (ch && this.consumerTag) await ch.cancel(this.consumerTag).catch(() => undefined);
    await this.flushing;
    await this.channel.close();
  }
}
