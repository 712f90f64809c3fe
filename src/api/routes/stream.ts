import { PassThrough } from 'node:stream';
import { Router } from '@koa/router';
import { TooManyRequestsError, UnavailableError } from '../../domain/errors';
import { listNotificationsAfter, streamStartPosition } from '../../db/repositories/readModels';
import { findToken } from '../../db/repositories/tokens';
import type { ApiDeps, ApiState } from '../context';
import { requireAuth, requireSelf } from '../middleware/auth';
import { requireUuidParams } from '../middleware/pathIds';
import { NotificationStream } from '../notificationStream';
import { formatComment, formatRetry } from '../sse';
import { parseRequest, streamHeaders, streamQuery } from '../validation';

const DEFAULT_HEARTBEAT_MS = 15_000;
/** A client reconnects after this long (EventSource's `retry`), sending Last-Event-ID. */
const RECONNECT_AFTER_MS = 2_000;
/**
 * A client that stops reading would make its stream buffer without bound;
 * past this it is cut instead, and its reconnect resumes from the store.
 */
const MAX_UNREAD_BYTES = 1024 * 1024;

/**
 * `GET /users/:id/notifications/stream`: the user's notifications as
 * Server-Sent Events. It first sends the stored notifications after the
 * client's Last-Event-ID (what it missed while away), then each one stored
 * later, as this process's `notifications.live` subscription (or, should a
 * live message be lost, the next heartbeat) wakes it to read the store.
 * Everything sent comes from the store, in commit order, so a reconnect
 * never loses anything that was committed and never sees anything twice.
 * Streams are capped per user and per process (`streams.*`), since each
 * holds a socket and a heartbeat's reads for as long as the client likes.
 */
export function notificationStreamRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();
  const hub = deps.liveNotifications;
  const heartbeatMs = deps.streamHeartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const { maxPerUser, maxPerProcess } = deps.config.streams;
  // No queue to wait in: a slot frees when some stream closes, so try again about a heartbeat later.
  const retryAfterSeconds = Math.max(1, Math.ceil(heartbeatMs / 1000));

  router.get('/users/:id/notifications/stream', requireAuth(deps), requireUuidParams({ id: 'user' }), requireSelf, async (ctx) => {
    const query = parseRequest(streamQuery, ctx.query, 'query');
    const headers = parseRequest(streamHeaders, { 'last-event-id': ctx.get('last-event-id') || undefined }, 'headers');
    if (hub.isClosed()) throw new UnavailableError('the API is shutting down; reconnect to another instance', 1, 'shutting_down');
    const userId = ctx.params.id!;
    // Checked here and taken by hub.subscribe below with no await between: no other request can take the slot meanwhile.
    if (hub.sizeOf(userId) >= maxPerUser) {
      throw new TooManyRequestsError(
        `at most ${maxPerUser} notification streams per user are open at once (streams.maxPerUser); close one first`,
        retryAfterSeconds,
        'too_many_streams',
      );
    }
    if (hub.size() >= maxPerProcess) {
      throw new TooManyRequestsError(
        `this API instance has ${maxPerProcess} notification streams open (streams.maxPerProcess); try again later or elsewhere`,
        retryAfterSeconds,
        'streams_full',
      );
    }

    // A stream outlives any idle timeout; Nagle would hold back small events.
    ctx.req.socket.setTimeout(0);
    ctx.req.socket.setNoDelay(true);
    ctx.req.socket.setKeepAlive(true);

    const body = new PassThrough();
    ctx.body = body;
    ctx.status = 200;
    ctx.type = 'text/event-stream';
    ctx.set('Cache-Control', 'no-store');
    // Reverse proxies (nginx) would otherwise buffer the stream.
    ctx.set('X-Accel-Buffering', 'no');

    const write = (chunk: string) => {
      if (body.writableEnded || body.destroyed) return;
      if (body.writableLength > MAX_UNREAD_BYTES) {
        deps.log.warn({ requestId: ctx.state.requestId, userId }, 'notification stream cut: the client is not reading');
        body.destroy();
        return;
      }
      body.write(chunk);
    };
    // Several things may end a stream (shutdown, a revoked token, a failed read); the first one does.
    const end = (chunk?: string) => {
      if (!body.writableEnded && !body.destroyed) body.end(chunk);
    };
    const lastEventId = headers['last-event-id'] ?? query.lastEventId;
    const stream = new NotificationStream({
      startAfter: () => streamStartPosition(deps.db, userId, lastEventId),
      loadAfter: (position, limit) => listNotificationsAfter(deps.db, userId, position, limit),
      write,
    });
    const failed = (err: unknown) => {
      deps.log.warn({ requestId: ctx.state.requestId, err }, 'notification stream ended: reading the store failed');
      end();
    };
    const unsubscribe = hub.subscribe(userId, {
      wake: () => void stream.wake().catch(failed),
      close: () => end(),
    });
    // A stream outlives the check made when it opened: a token revoked or expired since then ends it
    // (the client's reconnect then gets its 401).
    const tokenHash = ctx.state.auth!.tokenHash;
    const stillAuthorised = async () => {
      const token = await findToken(deps.db, tokenHash);
      return token !== undefined && token.revokedAt === null && token.expiresAt > deps.now().getTime();
    };
    const heartbeat = setInterval(() => {
      write(formatComment('heartbeat'));
      // The live path is best effort: a notification whose live message was lost arrives by the next heartbeat.
      // A busy database here is no reason to end the stream: the next wake-up reads from the same position.
      stream.wake().catch(() => undefined);
      stillAuthorised().then(
        (ok) => {
          if (!ok) end(formatComment('token revoked or expired'));
        },
        () => undefined, // the database is busy: the next heartbeat asks again
      );
    }, heartbeatMs);
    // Koa destroys the body when the response closes (client gone, or ended here).
    body.once('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
      stream.stop();
    });

    write(formatRetry(RECONNECT_AFTER_MS) + formatComment('connected'));
    void stream.start().catch(failed);
  });

  return router;
}
