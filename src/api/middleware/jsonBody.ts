import type { IncomingMessage } from 'node:http';
import type { Middleware } from 'koa';
import { ValidationError } from '../../domain/errors';
import type { ApiState } from '../context';
import { PayloadTooLargeError, UnsupportedMediaTypeError } from './errors';

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function isJson(contentType: string | undefined): boolean {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return type === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(type);
}

/**
 * Reads at most `limitBytes`, counting as the bytes arrive: a declared
 * Content-Length over the limit is refused before reading, and a body that
 * lies about its length (or is chunked) is cut off at the limit, so nothing
 * is ever buffered without bound.
 */
function readLimited(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > limitBytes) {
        cleanup();
        req.pause();
        reject(new PayloadTooLargeError(limitBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, received));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onAborted = () => {
      cleanup();
      reject(new ValidationError('the request body was cut off', [{ path: 'body', message: 'incomplete' }]));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

// JSON text is UTF-8 (RFC 8259). Buffer#toString would turn invalid bytes into
// U+FFFD and the request would be stored and published with text the client never sent.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeUtf8(body: Buffer): string {
  try {
    return strictUtf8.decode(body);
  } catch {
    throw new ValidationError('the request body is not valid UTF-8', [{ path: 'body', message: 'is not valid UTF-8' }]);
  }
}

/**
 * JSON in: a body must be application/json (else 415), fit the limit (else
 * 413) and parse (else 400), on the routes that take one (`takesBody`); the
 * others leave it unread, and Node discards it after the response.
 */
export function jsonBody(limitBytes: number, takesBody: (method: string, path: string) => boolean = () => true): Middleware<ApiState> {
  return async (ctx, next) => {
    if (!hasBody(ctx.req) || !takesBody(ctx.method, ctx.path)) return next();
    if (!isJson(ctx.get('content-type'))) throw new UnsupportedMediaTypeError();
    // Compressed bodies are not inflated here; refusing them beats a confusing parse error.
    const encoding = ctx.get('content-encoding').trim().toLowerCase();
    if (encoding !== '' && encoding !== 'identity') throw new UnsupportedMediaTypeError();
    const declared = Number(ctx.get('content-length') || NaN);
    if (Number.isFinite(declared) && declared > limitBytes) throw new PayloadTooLargeError(limitBytes);
    const raw = decodeUtf8(await readLimited(ctx.req, limitBytes));
    ctx.state.rawBody = raw;
    if (raw.trim() !== '') {
      try {
        ctx.state.body = JSON.parse(raw) as unknown;
      } catch (err) {
        throw new ValidationError('the request body is not valid JSON', [{ path: 'body', message: (err as Error).message }]);
      }
    }
    await next();
  };
}
