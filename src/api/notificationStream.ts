import type { Notification } from '../db/repositories/readModels';
import { formatEvent } from './sse';

/** What a stream sends for each notification: the list item shape, `event: notification`, `id:` = the notification id. */
export const NOTIFICATION_EVENT = 'notification';
/** Stored notifications are read this many at a time while catching up. */
export const CATCH_UP_PAGE = 100;
/** Ids remembered to drop the second copy of a notification (store and live path both deliver it). */
const REMEMBERED_IDS = 2000;

export interface NotificationStreamOptions {
  /** The client's Last-Event-ID: stored notifications after it are sent first. */
  lastEventId?: string;
  /** A UUIDv7 made when the client connected: where a resync reads from if nothing was sent yet. */
  connectedAt?: string;
  /** Stored notifications of this user strictly after `afterId`, oldest first. */
  loadAfter(afterId: string, limit: number): Promise<Notification[]>;
  write(chunk: string): void;
}

/**
 * One client's stream: the stored notifications it missed, then the live
 * ones, each id sent once. Live notifications that arrive while the store
 * is being read are held back and sent after it, so the client sees the
 * backlog in order and the two sources never interleave. Ids are UUIDv7, so
 * "after the last id the client saw" is "newer than what it has".
 */
export class NotificationStream {
  private readonly sent = new Set<string>();
  private held: Notification[] | undefined = [];
  private cursor: string | undefined;
  private catchingUp: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly opts: NotificationStreamOptions) {
    this.cursor = opts.lastEventId;
  }

  /** Sends what the store holds after Last-Event-ID, then whatever arrived live meanwhile. */
  start(): Promise<void> {
    return this.catchUp();
  }

  /**
   * After the live path was interrupted (the API's subscription was
   * re-established), reads the store again from the newest id sent: what
   * was published while nobody listened is only there.
   */
  resync(): Promise<void> {
    if (this.held === undefined) this.held = [];
    this.cursor ??= this.opts.connectedAt;
    return this.catchUp();
  }

  /** A live notification for this user. */
  live(notification: Notification): void {
    if (this.held) this.held.push(notification);
    else this.send(notification);
  }

  stop(): void {
    this.stopped = true;
    this.held = undefined;
  }

  private catchUp(): Promise<void> {
    this.catchingUp = this.catchingUp.then(async () => {
      try {
        // With no Last-Event-ID and nothing sent yet, there is nothing the client missed: it starts live.
        while (!this.stopped && this.cursor !== undefined) {
          const page = await this.opts.loadAfter(this.cursor, CATCH_UP_PAGE);
          for (const n of page) this.send(n);
          if (page.length < CATCH_UP_PAGE) break;
        }
      } finally {
        const held = this.held ?? [];
        this.held = undefined;
        for (const n of held) this.send(n);
      }
    });
    return this.catchingUp;
  }

  private send(n: Notification): void {
    if (this.stopped || this.sent.has(n.id)) return;
    this.sent.add(n.id);
    if (this.sent.size > REMEMBERED_IDS) this.sent.delete(this.sent.values().next().value!);
    if (this.cursor === undefined || n.id > this.cursor) this.cursor = n.id;
    this.opts.write(formatEvent({ id: n.id, event: NOTIFICATION_EVENT, data: JSON.stringify(n) }));
  }
}
