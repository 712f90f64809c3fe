import type { ConfirmChannel, Options } from 'amqplib';
import type { ChannelWrapper } from 'amqp-connection-manager';
import type { Logger } from '../log';
import type { BrokerConnection } from './connection';

export interface PublishRequest {
  exchange: string;
  routingKey: string;
  content: Buffer;
  /** `messageId` is required: returns are matched to publishes by it. */
  properties: Options.Publish & { messageId: string };
}

export type PublishFailure = 'returned' | 'nacked' | 'not-connected' | 'channel-closed' | 'timeout';

export class PublishError extends Error {
  constructor(readonly reason: PublishFailure, detail: string) {
    super(`publish ${reason}: ${detail}`);
    this.name = 'PublishError';
  }
}

/**
 * Every durable publish goes through here: persistent, `mandatory`, on a
 * confirm channel of a publish-only connection. A publish succeeds only when
 * the broker confirmed it and did not return it (RabbitMQ confirms an
 * unroutable message after returning it, so a bare confirm proves nothing).
 * Nothing is buffered while disconnected: the caller keeps the message
 * (outbox row, unacked delivery) and tries again.
 */
export class ConfirmPublisher {
  private readonly wrapper: ChannelWrapper;
  private channel: ConfirmChannel | undefined;
  private readonly returned = new Map<string, string>();
  private readonly inFlight = new Map<ConfirmChannel, Set<(err: Error) => void>>();

  constructor(private readonly connection: BrokerConnection, private readonly log: Logger, private readonly timeoutMs: number) {
    this.wrapper = connection.manager.createChannel({
      confirm: true,
      json: false,
      setup: async (channel: ConfirmChannel) => this.adopt(channel),
    });
  }

  private adopt(channel: ConfirmChannel): void {
    this.channel = channel;
    this.inFlight.set(channel, new Set());
    channel.on('return', (msg: { fields: { replyText: string; exchange: string; routingKey: string }; properties: { messageId?: string } }) => {
      const id = msg.properties.messageId;
      if (id) this.returned.set(id, `${msg.fields.replyText} (exchange ${msg.fields.exchange}, key ${msg.fields.routingKey})`);
    });
    channel.on('close', () => {
      if (this.channel === channel) this.channel = undefined;
      for (const fail of this.inFlight.get(channel) ?? []) fail(new PublishError('channel-closed', 'channel closed before the confirm arrived'));
      this.inFlight.delete(channel);
    });
  }

  isReady(): boolean {
    return this.channel !== undefined && !this.connection.isBlocked();
  }

  /** Waits until a channel is open (or the timeout passes). */
  async waitForChannel(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.channel && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return this.channel !== undefined;
  }

  publish(req: PublishRequest): Promise<void> {
    const channel = this.channel;
    if (!channel) return Promise.reject(new PublishError('not-connected', 'no open channel to the broker'));
    const id = req.properties.messageId;
    return new Promise<void>((resolve, reject) => {
      const waiters = this.inFlight.get(channel)!;
      let settled = false;
      const settle = (err: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        waiters.delete(fail);
        if (err) {
          this.returned.delete(id);
          reject(err);
          return;
        }
        const returnedWhy = this.returned.get(id);
        if (returnedWhy !== undefined) {
          this.returned.delete(id);
          reject(new PublishError('returned', returnedWhy));
          return;
        }
        resolve();
      };
      const fail = (err: Error) => settle(err);
      waiters.add(fail);
      const timer = setTimeout(
        () => settle(new PublishError('timeout', `no confirm within ${this.timeoutMs} ms${this.connection.isBlocked() ? ' (connection blocked by a broker alarm)' : ''}`)),
        this.timeoutMs,
      );
      try {
        channel.publish(req.exchange, req.routingKey, req.content, { ...req.properties, persistent: true, mandatory: true }, (err) =>
          settle(err ? new PublishError('nacked', String(err.message ?? err)) : null),
        );
      } catch (err) {
        settle(new PublishError('channel-closed', (err as Error).message));
      }
    });
  }

  /** Publishes a batch with confirms pipelined; one outcome per request, in order. */
  async publishAll(reqs: PublishRequest[]): Promise<(PublishError | null)[]> {
    const outcomes = await Promise.allSettled(reqs.map((r) => this.publish(r)));
    return outcomes.map((o) =>
      o.status === 'fulfilled' ? null : o.reason instanceof PublishError ? o.reason : new PublishError('nacked', String(o.reason)),
    );
  }

  async close(): Promise<void> {
    try {
      await this.wrapper.close();
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'publisher channel close');
    }
  }
}
