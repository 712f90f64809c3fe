import { z } from 'zod';

/**
 * A notification as the notifications worker stored it, sent on the
 * `notifications.live` fanout once its transaction committed. One schema for
 * the worker that publishes it, the API that receives it and the stream
 * event the client reads. Best effort, and only a hint to the API: on it, the
 * streams of that user read the store and send what it holds after their
 * position, never the message itself (a stream sends only what was stored).
 */
export const LIVE_NOTIFICATION_TYPE = 'notification.created';

export const liveNotificationSchema = z.object({
  id: z.string().uuid(),
  userId: z.string().uuid(),
  kind: z.string().min(1),
  text: z.string(),
  data: z.unknown(),
  createdAt: z.string(),
});

export type LiveNotification = z.infer<typeof liveNotificationSchema>;

/** All the API takes from a live message: whose streams to wake (other fields may change without breaking it). */
export const liveNotificationHint = liveNotificationSchema.pick({ userId: true });

/** The message a notification came from: its live copy carries on that message's request id and trace. */
export interface LiveNotificationCause {
  correlationId?: string;
  traceparent?: string;
}
