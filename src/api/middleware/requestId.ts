import type { Middleware } from 'koa';
import crypto from 'node:crypto';
import { MAX_REQUEST_ID_LENGTH, randomHex } from '../../domain/ids';
import { incomingTrace } from '../../observability/traceContext';
import type { ApiState } from '../context';

// A caller's id is echoed into logs and message correlation ids, so only a
// short, plain token is trusted; anything else is replaced.
const SANE_REQUEST_ID = new RegExp(`^[A-Za-z0-9._:-]{1,${MAX_REQUEST_ID_LENGTH}}$`);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A request that brings no trace starts one. Its trace id is its request id
 * when that is a UUID (it is whenever Warren generated it), so the
 * `traceparent` of the events it emits names the same request the
 * `x-request-id` the client saw does; any other request id gets a random trace.
 */
export function traceIdFor(requestId: string): string {
  const hex = UUID.test(requestId) ? requestId.replace(/-/g, '').toLowerCase() : '';
  return hex && !/^0+$/.test(hex) ? hex : randomHex(16);
}

/** Every response carries `x-request-id`, set before anything can fail. */
export function requestId(): Middleware<ApiState> {
  return async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const id = SANE_REQUEST_ID.test(incoming) ? incoming : crypto.randomUUID();
    ctx.state.requestId = id;
    ctx.set('x-request-id', id);
    const traceparent = ctx.get('traceparent');
    // Most requests bring none: their trace costs no parsing.
    const caller = traceparent ? incomingTrace(traceparent, ctx.headers.tracestate) : undefined;
    if (caller) {
      ctx.state.traceId = caller.parent.traceId;
      ctx.state.trace = caller.headers;
    } else ctx.state.traceId = traceIdFor(id);
    await next();
  };
}
