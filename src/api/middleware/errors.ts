import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Middleware } from 'koa';
import { v4 as uuidv4 } from 'uuid';
import {
  ConflictError,
  DomainError,
  ForbiddenError,
  NotFoundError,
  TooManyRequestsError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
  type FieldIssue,
} from '../../domain/errors';
import { isDatabaseUnavailable } from '../../db/repositories/errors';
import type { Logger } from '../../log';
import type { ApiState } from '../context';

/** HTTP-only failures of the request itself (not of the product's rules). */
export class PayloadTooLargeError extends DomainError {
  constructor(limitBytes: number) {
    super('payload_too_large', `the request body is larger than ${limitBytes} bytes`);
  }
}

export class UnsupportedMediaTypeError extends DomainError {
  constructor() {
    super('unsupported_media_type', 'request bodies must be application/json');
  }
}

interface ErrorBody {
  error: { code: string; message: string; details?: FieldIssue[] };
}

const STATUS_OF: [new (...args: never[]) => DomainError, number][] = [
  [ValidationError, 400],
  [UnauthorizedError, 401],
  [ForbiddenError, 403],
  [NotFoundError, 404],
  [ConflictError, 409],
  [PayloadTooLargeError, 413],
  [UnsupportedMediaTypeError, 415],
  [TooManyRequestsError, 429],
  [UnavailableError, 503],
];

/** Koa and router errors (`ctx.throw`) carry their own 4xx status. */
function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { status, expose } = err as { status?: unknown; expose?: unknown };
  return typeof status === 'number' && status >= 400 && status < 500 && expose === true ? status : undefined;
}

/**
 * The one place typed errors become HTTP statuses and the error body
 * `{ error: { code, message, details? } }`. Unknown errors are logged and
 * answered 500 without their message, which may hold internals.
 */
export function mapErrors(log: Logger): Middleware<ApiState> {
  return async (ctx, next) => {
    try {
      await next();
      // Nothing matched the path (404), the method (405), or a method no route knows (501): still the error shape.
      if (ctx.body == null && (ctx.status === 404 || ctx.status === 405 || ctx.status === 501)) {
        const body: ErrorBody =
          ctx.status === 404
            ? { error: { code: 'not_found', message: `no route for ${ctx.method} ${ctx.path}` } }
            : ctx.status === 405
              ? { error: { code: 'method_not_allowed', message: `${ctx.method} is not allowed on ${ctx.path}` } }
              : { error: { code: 'not_implemented', message: `${ctx.method} is not a method this API serves` } };
        const status = ctx.status;
        ctx.body = body;
        ctx.status = status;
      }
    } catch (caught) {
      let err = caught;
      if (!(err instanceof DomainError) && isDatabaseUnavailable(err)) {
        log.warn({ requestId: ctx.state.requestId, err }, 'database unavailable');
        err = new UnavailableError('the database is busy or unreachable; try again shortly', 1, 'database_unavailable');
      }
      const mapped = err instanceof DomainError ? STATUS_OF.find(([type]) => err instanceof type)?.[1] : undefined;
      const status = mapped ?? httpStatusOf(err) ?? 500;
      let body: ErrorBody;
      if (err instanceof DomainError && mapped !== undefined) {
        body = { error: { code: err.code, message: err.message } };
        if (err instanceof ValidationError) body.error.details = err.details;
      } else if (status < 500) {
        body = { error: { code: 'bad_request', message: (err as Error).message } };
      } else {
        log.error({ requestId: ctx.state.requestId, err }, 'unhandled error');
        body = { error: { code: 'internal', message: 'internal error' } };
      }
      if (err instanceof UnavailableError || err instanceof TooManyRequestsError) ctx.set('Retry-After', String(err.retryAfterSeconds));
      if (err instanceof UnauthorizedError) ctx.set('WWW-Authenticate', 'Bearer realm="warren"');
      if (err instanceof PayloadTooLargeError) ctx.set('Connection', 'close'); // the unread rest of the body is not wanted
      ctx.status = status;
      ctx.body = body;
    }
  };
}

/**
 * Requests Node's HTTP parser refuses (headers over its limit, a malformed
 * request line, a NUL in a header) never reach Koa, and Node's own answer is
 * a bare status line. This answers them in the API's error shape with an
 * x-request-id, like every other response (`server.on('clientError', ...)`).
 */
export function answerUnparsableRequest(err: Error & { code?: string }, socket: Duplex): void {
  // Nothing to answer on a dead socket, nor in the middle of a response already under way.
  const inProgress = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inProgress?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, code, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'headers_too_large', `the request line and headers are larger than ${http.maxHeaderSize} bytes`]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request_timeout', 'the request did not arrive in time']
        : [400, 'bad_request', 'the request is not valid HTTP/1.1'];
  const body = JSON.stringify({ error: { code, message } } satisfies ErrorBody);
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n` +
      `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
      `x-request-id: ${uuidv4()}\r\nConnection: close\r\n\r\n${body}`,
  );
}
