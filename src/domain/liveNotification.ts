import { z } from 'zod';

/**
 * A notification as the notifications worker stored it, sent on the
 * `notifications.live` fanout once its transaction committed. One schema for
 * the worker that publishes it, the API that receives it and the stream
 * event the client reads. Best effort: what the live path loses, the stored
 * notifications fill in (the stream resumes from them by id).
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

/** The message a notification came from: its live copy carries on that message's request id and trace. */
export interface LiveNotificationCause {
  correlationId?: string;
  traceparent?: string;
}
