import type { ConfirmChannel, MessageProperties, Options } from 'amqplib';
import type { Logger } from '../log';
import { ManagedChannel } from './channel';
import type { BrokerConnection } from './connection';

export interface PublishRequest {
  exchange: string;
  routingKey: string;
  content: Buffer;
  /** `messageId` is required: returns are matched to publishes by it. */
  properties: Options.Publish & { messageId: string };
}

/**
 * An original's AMQP properties on a copy of it (retry, park, re-park,
 * replay): never user-id (the broker checks it against whoever publishes)
 * nor a per-message TTL (a parked message must not expire).
 */
export function copiedProperties(p: MessageProperties, messageId: string, headers: Record<string, unknown>): PublishRequest['properties'] {
  const props: PublishRequest['properties'] = { messageId, headers };
  if (p.contentType) props.contentType = p.contentType as string;
  if (p.contentEncoding) props.contentEncoding = p.contentEncoding as string;
  if (p.type) props.type = p.type as string;
  if (p.correlationId) props.correlationId = p.correlationId as string;
  if (p.timestamp) props.timestamp = p.timestamp as number;
  if (p.appId) props.appId = p.appId as string;
  if (p.replyTo) props.replyTo = p.replyTo as string;
  if (p.priority !== undefined) props.priority = p.priority as number;
  return props;
}

/** `unencodable`: amqplib threw while encoding it (nothing was sent); publishing the same request again throws again. */
export type PublishFailure = 'returned' | 'nacked' | 'not-connected' | 'channel-closed' | 'timeout' | 'unencodable';

export class PublishError extends Error {
  constructor(
    readonly reason: PublishFailure,
    detail: string,
  ) {
    super(`publish ${reason}: ${detail}`);
    this.name = 'PublishError';
  }
}

/** Told of every publish when it settles (metrics): its exchange, seconds to settle, and why it failed if it did. */
export type PublishObserver = (exchange: string, seconds: number, failure?: PublishFailure) => void;

interface ReturnedMessage {
  fields: { replyText: string; exchange: string; routingKey: string };
  properties: { messageId?: string };
}

/**
 * Every durable publish goes through here: persistent, `mandatory`, on a
 * confirm channel of a publish-only connection. A publish succeeds only when
 * the broker confirmed it and did not return it (RabbitMQ confirms an
 * unroutable message after returning it, so a bare confirm proves nothing).
 * Nothing is buffered while disconnected: the caller keeps the message
 * (outbox row, unacked delivery) and tries again.
 */
/**
 * amqplib fails a publish still waiting for its confirm with this error when
 * the channel closes (its own close listener runs before anyone else's): not
 * a nack by the broker, which amqplib reports as 'message nacked'.
 */
const AMQPLIB_CHANNEL_CLOSED = 'channel closed';

function confirmFailure(err: unknown): PublishError {
  const message = String((err as Error).message ?? err);
  return message === AMQPLIB_CHANNEL_CLOSED
    ? new PublishError('channel-closed', 'channel closed before the confirm arrived')
    : new PublishError('nacked', message);
}

export class ConfirmPublisher {
  private readonly channel: ManagedChannel<ConfirmChannel>;
  private readonly returned = new Map<string, string>();
  private readonly inFlight = new Map<ConfirmChannel, Set<(err: Error) => void>>();

  constructor(
    private readonly connection: BrokerConnection,
    log: Logger,
    private readonly timeoutMs: number,
    private readonly observe: PublishObserver = () => undefined,
  ) {
    this.channel = new ManagedChannel<ConfirmChannel>({
      connection,
      confirm: true,
      name: 'publisher',
      log,
      setup: async (channel) => this.adopt(channel),
      onClose: (channel) => this.failInFlight(channel),
    });
  }

  private adopt(channel: ConfirmChannel): void {
    this.inFlight.set(channel, new Set());
    channel.on('return', (msg: ReturnedMessage) => {
      const id = msg.properties.messageId;
      if (id) this.returned.set(id, `${msg.fields.replyText} (exchange ${msg.fields.exchange}, routing key ${msg.fields.routingKey})`);
    });
  }

  private failInFlight(channel: ConfirmChannel): void {
    for (const fail of this.inFlight.get(channel) ?? []) fail(new PublishError('channel-closed', 'channel closed before the confirm arrived'));
    this.inFlight.delete(channel);
  }

  isReady(): boolean {
    return this.channel.current() !== undefined && !this.connection.isBlocked();
  }

  /** Waits until a channel is open (or the timeout passes). */
  async waitForChannel(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.channel.current() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    return this.channel.current() !== undefined;
  }

  publish(req: PublishRequest): Promise<void> {
    const started = process.hrtime.bigint();
    const channel = this.channel.current();
    if (!channel) {
      this.observe(req.exchange, 0, 'not-connected');
      return Promise.reject(new PublishError('not-connected', 'no open channel to the broker'));
    }
    const id = req.properties.messageId;
    const waiters = this.inFlight.get(channel) ?? new Set();
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        waiters.delete(settle);
        const returnedWhy = this.returned.get(id);
        this.returned.delete(id);
        const failure = err ?? (returnedWhy !== undefined ? new PublishError('returned', returnedWhy) : null);
        this.observe(
          req.exchange,
          Number(process.hrtime.bigint() - started) / 1e9,
          failure ? (failure instanceof PublishError ? failure.reason : 'nacked') : undefined,
        );
        if (failure) reject(failure);
        else resolve();
      };
      waiters.add(settle);
      const timer = setTimeout(() => {
        const why = this.connection.isBlocked() ? ' (connection blocked by a broker alarm)' : '';
        settle(new PublishError('timeout', `no confirm within ${this.timeoutMs} ms${why}`));
      }, this.timeoutMs);
      try {
        channel.publish(req.exchange, req.routingKey, req.content, { ...req.properties, persistent: true, mandatory: true }, (err) =>
          settle(err ? confirmFailure(err) : null),
        );
      } catch (err) {
        // amqplib 2 encodes a publish before it numbers it for its confirm:
        // one that throws here was neither sent nor numbered, so the channel
        // still counts confirms as the broker does and stays in use.
        const closed = (err as Error).name === 'IllegalOperationError';
        settle(new PublishError(closed ? 'channel-closed' : 'unencodable', (err as Error).message));
      }
    });
  }

  /** Publishes a batch with confirms pipelined; one outcome per request, in order. */
  async publishAll(reqs: PublishRequest[]): Promise<(PublishError | null)[]> {
    const outcomes = await Promise.allSettled(reqs.map((r) => this.publish(r)));
    return outcomes.map((o) => (o.status === 'fulfilled' ? null : o.reason instanceof PublishError ? o.reason : new PublishError('nacked', String(o.reason))));
  }

  async close(): Promise<void> {
    await this.channel.close();
  }
}
