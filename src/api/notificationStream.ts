import type { StreamedNotification } from '../db/repositories/readModels';
import { formatEvent } from './sse';

/** What a stream sends for each notification: the list item shape, `event: notification`, `id:` = its stream position. */
export const NOTIFICATION_EVENT = 'notification';
/** Stored notifications are read this many at a time. */
export const CATCH_UP_PAGE = 100;

export interface NotificationStreamOptions {
  /** Where the stream starts: it sends the stored notifications after this position. */
  startAfter(): Promise<number>;
  /** Stored notifications of this user strictly after `position`, in position order. */
  loadAfter(position: number, limit: number): Promise<StreamedNotification[]>;
  write(chunk: string): void;
}

/**
 * One client's stream. Everything it sends comes from the store, in stream
 * position order, each position once; `id:` is the position, so the
 * client's Last-Event-ID says exactly how far it got. Positions follow
 * commit order per user, so reading "after the last one sent" never passes
 * over one committed later. A live notification is only a wake-up: the
 * stream then reads the store, and what the live message said is never
 * sent (anyone who may publish to `notifications.live` could say anything,
 * and a forged id would become the client's Last-Event-ID).
 */
export class NotificationStream {
  private position: number | undefined;
  /** The reads, one after another. */
  private reading: Promise<void> = Promise.resolve();
  /** A read queued behind the running one and not started yet: a wake-up now is answered by it. */
  private queued: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly opts: NotificationStreamOptions) {}

  /** Finds where to start, then sends what the store holds after it. */
  start(): Promise<void> {
    const started = this.reading.then(async () => {
      this.position = await this.opts.startAfter();
    });
    this.reading = started.catch(() => undefined);
    return started.then(() => this.wake());
  }

  /**
   * Something may have been stored for this user (a live notification, the
   * live subscription re-established, a heartbeat): sends what the store
   * holds after the last position sent. Wake-ups that come while a read is
   * waiting to start share it, so a burst costs at most two reads.
   */
  wake(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.queued) return this.queued;
    const read = this.reading.then(() => {
      this.queued = undefined;
      return this.sendNew();
    });
    this.queued = read;
    this.reading = read.catch(() => undefined);
    return read;
  }

  stop(): void {
    this.stopped = true;
  }

  private async sendNew(): Promise<void> {
    // Not started (or its start failed): there is no position to read after.
    while (!this.stopped && this.position !== undefined) {
      const page = await this.opts.loadAfter(this.position, CATCH_UP_PAGE);
      for (const n of page) this.send(n);
      if (page.length < CATCH_UP_PAGE) return;
    }
  }

  private send({ position, ...item }: StreamedNotification): void {
    if (this.stopped || this.position === undefined || position <= this.position) return;
    this.position = position;
    this.opts.write(formatEvent({ id: String(position), event: NOTIFICATION_EVENT, data: JSON.stringify(item) }));
  }
}
