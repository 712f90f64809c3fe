export interface NotificationListener {
  /** Something may have been stored for this listener's user: read the store. */
  wake(): void;
  /** The API is shutting down: end the stream. */
  close(): void;
}

/**
 * The open notification streams of this API process, by user. The broker
 * subscription (src/broker/live.ts) wakes a user's streams when it hears of
 * a notification for them; each stream then reads the store itself. Closing
 * the hub ends every stream, so a shutdown never waits on a client that
 * would keep its response open forever.
 */
export class NotificationHub {
  private readonly byUser = new Map<string, Set<NotificationListener>>();
  private open = 0;
  private closed = false;

  isClosed(): boolean {
    return this.closed;
  }

  /** Open streams (all users). */
  size(): number {
    return this.open;
  }

  /** Open streams of one user. */
  sizeOf(userId: string): number {
    return this.byUser.get(userId)?.size ?? 0;
  }

  /** Returns the unsubscribe function; a closed hub closes the listener at once. */
  subscribe(userId: string, listener: NotificationListener): () => void {
    if (this.closed) {
      listener.close();
      return () => undefined;
    }
    let set = this.byUser.get(userId);
    if (!set) this.byUser.set(userId, (set = new Set()));
    if (!set.has(listener)) this.open++;
    set.add(listener);
    return () => {
      if (set.delete(listener)) this.open--;
      if (set.size === 0 && this.byUser.get(userId) === set) this.byUser.delete(userId);
    };
  }

  /** A notification for this user was (said to be) stored. */
  wake(userId: string): void {
    for (const listener of [...(this.byUser.get(userId) ?? [])]) listener.wake();
  }

  /** The live path was interrupted: every stream reads the store for what it missed. */
  wakeAll(): void {
    for (const set of this.byUser.values()) for (const listener of [...set]) listener.wake();
  }

  close(): void {
    this.closed = true;
    const all = [...this.byUser.values()].flatMap((set) => [...set]);
    // Emptied too, so that a stream's own unsubscribe, which comes later, counts nothing twice.
    for (const set of this.byUser.values()) set.clear();
    this.byUser.clear();
    this.open = 0;
    for (const listener of all) listener.close();
  }
}
