import type { Knex } from 'knex';
import type { MessageBody, WarrenMessage } from '../domain/messages';
import { newId } from '../domain/ids';
import type { LiveNotification, LiveNotificationCause } from '../domain/liveNotification';
import type { HandlerContext, WorkerDefinition } from '../consume/handler';
import { LiveNotificationPublisher } from '../broker/live';
import { notificationsMigrations, STREAM_COUNTERS_TABLE } from '../db/migrations/notifications';
import type { WorkerDeclaration } from './declaration';

type Change = { from: unknown; to: unknown };
type NotificationKind = 'profile_updated' | 'new_follower';

/** Free text is long; a notification says it changed rather than quoting it. */
const SUMMARISED_FIELDS = new Set(['bio']);
/** Longer values are summarised too, so a notification stays one line. */
const QUOTE_MAX_CHARS = 40;

/** Where a committed notification goes for the users connected right now (src/broker/live.ts). */
export interface LiveNotificationSink {
  publish(notification: LiveNotification, cause?: LiveNotificationCause): void;
}

/**
 * Tells users about events that concern them. user.created is deliberately
 * not handled: nobody needs telling that they exist (the consumer acks it
 * and counts it as ignored). With a `live` sink, each notification is also
 * sent to connected clients once it is committed (never before: a client
 * must not see what a rollback takes back).
 */
export async function notificationsHandler(
  message: WarrenMessage<'user.updated' | 'user.followed'>,
  tx: Knex.Transaction,
  ctx: HandlerContext,
  live?: LiveNotificationSink,
): Promise<void> {
  const notify = async (userId: string, kind: NotificationKind, text: string, data: object) => {
    const notification: LiveNotification = { id: newId(), userId, kind, text, data, createdAt: ctx.now().toISOString() };
    await tx('notifications').insert({
      id: notification.id,
      seq: await nextStreamPosition(tx, userId),
      user_id: userId,
      kind,
      text,
      data: JSON.stringify(data),
      message_id: message.messageId,
      created_at: notification.createdAt,
    });
    if (live) ctx.afterCommit(() => live.publish(notification, { correlationId: message.correlationId, traceparent: message.traceparent }));
  };

  if (message.type === 'user.updated') {
    const changes = realChanges(message.body);
    const fields = Object.keys(changes);
    // An update that changed nothing is no news.
    if (fields.length === 0) return;
    await notify(message.body.userId, 'profile_updated', describeChanges(changes), { changes, updatedAt: message.body.updatedAt });
    return;
  }

  const { followerId, followerHandle, followeeId, at } = message.body;
  await notify(followeeId, 'new_follower', `${followerHandle ? `@${followerHandle}` : followerId} followed you`, { followerId, followerHandle, at });
}

/**
 * The next position in this user's notification stream, taken in the
 * transaction that stores the notification. Its counter row stays locked
 * until that transaction ends (PostgreSQL's row lock; SQLite has one writer
 * at a time), so another worker's notification for the same user waits, and
 * takes the next number only once this one is committed or rolled back:
 * position order is commit order, and a reader that sees position n has
 * every position below it. Ids cannot give that: they are made before the
 * commit, on whichever worker's clock.
 */
export async function nextStreamPosition(tx: Knex.Transaction, userId: string): Promise<number> {
  const bump = async () =>
    (await tx(STREAM_COUNTERS_TABLE).where({ user_id: userId }).increment('last_seq', 1).returning('last_seq')) as { last_seq: number | string }[];
  let [row] = await bump();
  // A user's first notification; a concurrent first one makes the insert do nothing, and then the row is there to bump.
  if (!row)
    [row] = (await tx(STREAM_COUNTERS_TABLE).insert({ user_id: userId, last_seq: 1 }).onConflict('user_id').ignore().returning('last_seq')) as {
      last_seq: number | string;
    }[];
  if (!row) [row] = await bump();
  if (!row) throw new Error(`no stream position for user ${userId}`);
  return Number(row.last_seq);
}

/** Drops entries whose value did not actually change. */
function realChanges(body: MessageBody<'user.updated'>): Record<string, Change> {
  return Object.fromEntries(Object.entries(body.changes).filter(([, c]) => JSON.stringify(c.from) !== JSON.stringify(c.to)));
}

/** `Your displayName changed from "A" to "B"; your bio changed` */
export function describeChanges(changes: Record<string, Change>): string {
  const text = Object.entries(changes)
    .map(([field, { from, to }]) =>
      !SUMMARISED_FIELDS.has(field) && isQuotable(from) && isQuotable(to)
        ? `your ${field} changed from ${JSON.stringify(from)} to ${JSON.stringify(to)}`
        : `your ${field} changed`,
    )
    .join('; ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function isQuotable(value: unknown): value is string {
  return typeof value === 'string' && value.length <= QUOTE_MAX_CHARS;
}

/** The events that notify someone. */
type NotifyingEvent = 'user.updated' | 'user.followed';

/** The notifications worker, sending what it commits to `live` when given one. */
export function notificationsWorkerWith(live: LiveNotificationSink | undefined): WorkerDefinition<NotifyingEvent> {
  return {
    name: 'notifications',
    queue: 'notifications.user-events',
    bindings: [{ exchange: 'user.events', routingKey: '' }],
    handles: ['user.updated', 'user.followed'],
    handle: (message, tx, ctx) => notificationsHandler(message, tx, ctx, live),
  };
}

/**
 * `warren worker notifications`: the subscription of the user.events fanout.
 * Its process also sends each committed notification to the API processes'
 * live streams (best effort), on its publishing connection.
 */
export const notificationsWorker: WorkerDeclaration<NotifyingEvent> = {
  ...notificationsWorkerWith(undefined),
  database: { service: 'notifications', migrations: notificationsMigrations },
  brokerUser: 'notifications',
  defaults: { retryAttempts: 5 },
  withCollaborators({ publishConnection, log }) {
    const live = new LiveNotificationPublisher(publishConnection, log);
    return { worker: notificationsWorkerWith(live), close: () => live.close() };
  },
};
