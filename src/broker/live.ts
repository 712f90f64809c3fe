import type { Channel, ConsumeMessage } from 'amqplib';
import { LIVE_NOTIFICATION_TYPE, liveNotificationHint, type LiveNotification, type LiveNotificationCause } from '../domain/liveNotification';
import { APP_ID, SCHEMA_VERSION } from '../domain/messages';
import type { Logger } from '../log';
import { ManagedChannel } from './channel';
import type { BrokerConnection } from './connection';

export const LIVE_EXCHANGE = 'notifications.live';

/**
 * The worker's side of live notifications. This is the one publish that is
 * not durable: transient, not `mandatory`, on a channel without confirms,
 * never awaited. The notification is already committed and the stream
 * catches up from the store, so a message lost here (no channel, broker
 * away, a full socket buffer) costs latency, never data; and waiting for it
 * would hold up the ack of the delivery that caused it.
 */
export class LiveNotificationPublisher {
  private readonly channel: ManagedChannel<Channel>;
  dropped = 0;

  constructor(
    connection: BrokerConnection,
    private readonly log: Logger,
  ) {
    this.channel = new ManagedChannel<Channel>({ connection, confirm: false, name: 'live publisher', log, setup: async () => undefined });
  }

  publish(notification: LiveNotification, cause: LiveNotificationCause = {}): void {
    const channel = this.channel.current();
    if (!channel) {
      this.drop(notification, 'no open channel');
      return;
    }
    try {
      const sent = channel.publish(LIVE_EXCHANGE, '', Buffer.from(JSON.stringify(notification)), {
        contentType: 'application/json',
        messageId: notification.id,
        type: LIVE_NOTIFICATION_TYPE,
        appId: APP_ID,
        // AMQP timestamps are seconds.
        timestamp: Math.floor(Date.now() / 1000),
        ...(cause.correlationId ? { correlationId: cause.correlationId } : {}),
        headers: { 'x-schema-version': SCHEMA_VERSION, ...(cause.traceparent ? { traceparent: cause.traceparent } : {}) },
        // Transient on purpose (see above): the store is the durable copy.
        persistent: false,
      });
      // false: the socket buffer is full; the frame is queued all the same, and nothing waits on it.
      if (!sent) this.log.debug({ id: notification.id }, 'live notification queued behind a full socket buffer');
    } catch (err) {
      this.drop(notification, (err as Error).message);
    }
  }

  private drop(notification: LiveNotification, why: string): void {
    this.dropped++;
    this.log.debug({ id: notification.id, why }, 'live notification not sent; the stream catches up from the store');
  }

  close(): Promise<void> {
    return this.channel.close();
  }
}

export interface LiveSubscriberOptions {
  /** A consume-only connection. */
  connection: BrokerConnection;
  log: Logger;
  /**
   * A live message said a notification was stored for this user. Only a
   * hint: anyone who may publish to the exchange can say so, so the API
   * reads the store rather than trusting what the message carries.
   */
  onNotified(userId: string): void;
  /** After every (re)subscription: what arrived while unsubscribed is only in the store. */
  onSubscribed?(): void;
}

/**
 * The API's side: one classic, exclusive, server-named, auto-delete queue
 * per process, bound to `notifications.live` and consumed without acks. The
 * queue dies with the connection, so a restarted or reconnected process
 * declares a new one (the API's broker user may configure only `amq.gen-*`).
 */
export class LiveNotificationSubscriber {
  private readonly channel: ManagedChannel<Channel>;
  private queue: string | undefined;
  received = 0;
  rejected = 0;

  constructor(private readonly opts: LiveSubscriberOptions) {
    this.channel = new ManagedChannel<Channel>({
      connection: opts.connection,
      confirm: false,
      name: 'live subscriber',
      log: opts.log,
      setup: async (ch) => {
        const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true, durable: false, arguments: { 'x-queue-type': 'classic' } });
        await ch.bindQueue(queue, LIVE_EXCHANGE, '');
        await ch.consume(queue, (msg) => this.deliver(msg), { noAck: true, exclusive: true });
        this.queue = queue;
        opts.onSubscribed?.();
      },
      onClose: () => {
        this.queue = undefined;
      },
    });
  }

  /** Why the last subscription attempt failed ('' when it did not). */
  failure(): string {
    return this.channel.failure();
  }

  /** Whether this process receives live notifications right now. */
  subscribed(): boolean {
    return this.channel.current() !== undefined && this.queue !== undefined;
  }

  private deliver(msg: ConsumeMessage | null): void {
    if (!msg) {
      // The broker cancelled the subscription (the queue was deleted): a new channel declares a new one.
      this.channel
        .current()
        ?.close()
        .catch(() => undefined);
      return;
    }
    let userId: string;
    try {
      ({ userId } = liveNotificationHint.parse(JSON.parse(msg.content.toString('utf8'))));
    } catch (err) {
      this.rejected++;
      this.opts.log.warn({ err }, 'live notification ignored: not a notification');
      return;
    }
    this.received++;
    this.opts.onNotified(userId);
  }

  close(): Promise<void> {
    return this.channel.close();
  }
}
