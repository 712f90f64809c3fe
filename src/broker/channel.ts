import type { Channel, ConfirmChannel } from 'amqplib';
import type { Logger } from '../log';
import type { BrokerConnection } from './connection';

export interface ManagedChannelOptions<C extends Channel> {
  connection: BrokerConnection;
  confirm: C extends ConfirmChannel ? true : false;
  name: string;
  log: Logger;
  /** Replayed on every new channel: prefetch, bindings, consumers, listeners. */
  setup(channel: C): Promise<void>;
  /** Called once a channel has closed (by the broker, the network or us). */
  onClose?(channel: C): void;
  retryDelayMs?: number;
}

/**
 * Keeps one channel open on a reconnecting connection and replays its setup
 * on every new channel. Unlike a wrapper that waits for the next connection,
 * a channel the broker closed on its own (a 404 on a deleted queue, a
 * precondition failure) is reopened at once, so a consumer never sits
 * connected and idle.
 */
export class ManagedChannel<C extends Channel> {
  private channel: C | undefined;
  private stopped = false;
  private opening = false;
  private lastError = '';
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ManagedChannelOptions<C>) {
    opts.connection.manager.on('connect', () => void this.open());
    if (opts.connection.isConnected()) void this.open();
  }

  current(): C | undefined {
    return this.channel;
  }

  /** Why the last setup failed ('' when it did not). */
  failure(): string {
    return this.lastError;
  }

  private async open(): Promise<void> {
    if (this.stopped || this.opening || this.channel) return;
    const model = this.opts.connection.manager.connection;
    if (!model) return; // the next 'connect' opens it
    this.opening = true;
    let channel: C | undefined;
    try {
      channel = (this.opts.confirm ? await model.createConfirmChannel() : await model.createChannel()) as C;
      channel.on('error', (err: Error) => this.opts.log.warn({ channel: this.opts.name, err }, 'channel error'));
      const opened = channel;
      let closedInSetup = false;
      channel.on('close', () => {
        closedInSetup = true;
        this.closed(opened);
      });
      await this.opts.setup(channel);
      // A setup whose steps all answered can still lose its channel on the way
      // (a refusal that arrives after the reply it followed, a setup step that
      // tolerates an error): kept, it would be current() for good, since the
      // next open() and the next reconnect only replace a missing channel.
      if (closedInSetup) throw new Error('channel closed during its setup');
      if (this.stopped) {
        // close() ran while this channel was being set up: nobody will close it later.
        await channel.close().catch(() => undefined);
        return;
      }
      this.channel = channel;
      if (this.lastError) this.opts.log.info({ channel: this.opts.name }, 'channel ready again');
      this.lastError = '';
    } catch (err) {
      const message = (err as Error).message;
      if (message !== this.lastError) this.opts.log.warn({ channel: this.opts.name, err }, 'channel setup failed, retrying');
      this.lastError = message;
      if (channel) channel.close().catch(() => undefined);
      this.retryLater();
    } finally {
      this.opening = false;
    }
  }

  private closed(channel: C): void {
    if (this.channel === channel) this.channel = undefined;
    this.opts.onClose?.(channel);
    if (!this.stopped && this.opts.connection.isConnected()) this.retryLater();
  }

  private retryLater(): void {
    if (this.stopped || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.open();
    }, this.opts.retryDelayMs ?? 1000);
  }

  async close(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const channel = this.channel;
    this.channel = undefined;
    if (channel) await channel.close().catch(() => undefined);
  }
}
