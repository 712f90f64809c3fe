import { PassThrough } from 'node:stream';
import { Router } from '@koa/router';
import { UnavailableError } from '../../domain/errors';
import { newId } from '../../domain/ids';
import type { LiveNotification } from '../../domain/liveNotification';
import { listNotificationsAfter } from '../../db/repositories/readModels';
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

/** The stream event carries the list item shape, without the user id the client already knows. */
function asItem({ id, kind, text, data, createdAt }: LiveNotification) {
  return { id, kind, text, data, createdAt };
}

/**
 * `GET /users/:id/notifications/stream`: the user's notifications as
 * Server-Sent Events. It first sends the stored notifications after the
 * client's Last-Event-ID (what it missed while away), then live ones from
 * this process's `notifications.live` subscription, each id once. The live
 * path is best effort; the store is the record, so a reconnect never loses
 * anything that was committed.
 */
export function notificationStreamRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();
  const hub = deps.liveNotifications;
  const heartbeatMs = deps.streamHeartbeatMs ?? DEFAULT_HEARTBEAT_MS;

  router.get('/users/:id/notifications/stream', requireAuth(deps), requireUuidParams({ id: 'user' }), requireSelf, async (ctx) => {
    const query = parseRequest(streamQuery, ctx.query, 'query');
    const headers = parseRequest(streamHeaders, { 'last-event-id': ctx.get('last-event-id') || undefined }, 'headers');
    if (hub.isClosed()) throw new UnavailableError('the API is shutting down; reconnect to another instance', 1, 'shutting_down');
    const userId = ctx.params.id!;

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
    const stream = new NotificationStream({
      lastEventId: headers['last-event-id'] ?? query.lastEventId,
      connectedAt: newId(),
      loadAfter: (afterId, limit) => listNotificationsAfter(deps.db, userId, afterId, limit),
      write,
    });
    const failed = (err: unknown) => {
      deps.log.warn({ requestId: ctx.state.requestId, err: (err as Error).message }, 'notification stream ended: reading the store failed');
      end();
    };
    const unsubscribe = hub.subscribe(userId, {
      notify: (n) => stream.live(asItem(n)),
      resync: () => void stream.resync().catch(failed),
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
