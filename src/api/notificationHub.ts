import type { LiveNotification } from '../domain/liveNotification';

export interface NotificationListener {
  notify(notification: LiveNotification): void;
  /** The live path was interrupted: read the store for what it missed. */
  resync(): void;
  /** The API is shutting down: end the stream. */
  close(): void;
}

/**
 * The open notification streams of this API process, by user. The broker
 * subscription (src/broker/live.ts) feeds it; each stream listens for its
 * own user only. Closing it ends every stream, so a shutdown never waits on
 * a client that would keep its response open forever.
 */
export class NotificationHub {
  private readonly byUser = new Map<string, Set<NotificationListener>>();
  private closed = false;

  isClosed(): boolean {
    return this.closed;
  }

  /** Open streams (all users). */
  size(): number {
    let n = 0;
    for (const set of this.byUser.values()) n += set.size;
    return n;
  }

  /** Returns the unsubscribe function; a closed hub closes the listener at once. */
  subscribe(userId: string, listener: NotificationListener): () => void {
    if (this.closed) {
      listener.close();
      return () => undefined;
    }
    let set = this.byUser.get(userId);
    if (!set) this.byUser.set(userId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.byUser.get(userId) === set) this.byUser.delete(userId);
    };
  }

  publish(notification: LiveNotification): void {
    for (const listener of [...(this.byUser.get(notification.userId) ?? [])]) listener.notify(notification);
  }

  resync(): void {
    for (const set of this.byUser.values()) for (const listener of [...set]) listener.resync();
  }

  close(): void {
    this.closed = true;
    const all = [...this.byUser.values()].flatMap((set) => [...set]);
    this.byUser.clear();
    for (const listener of all) listener.close();
  }
}
