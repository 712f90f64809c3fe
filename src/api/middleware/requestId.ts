import type { Middleware } from 'koa';
import { v4 as uuidv4 } from 'uuid';
import type { ApiState } from '../context';

// A caller's id is echoed into logs and message correlation ids, so only a
// short, plain token is trusted; anything else is replaced.
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** Every response carries `x-request-id`, set before anything can fail. */
export function requestId(): Middleware<ApiState> {
  return async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const id = SANE_REQUEST_ID.test(incoming) ? incoming : uuidv4();
    ctx.state.requestId = id;
    ctx.set('x-request-id', id);
    const trace = TRACEPARENT.exec(ctx.get('traceparent'));
    if (trace && !/^0+$/.test(trace[1]!)) ctx.state.traceId = trace[1];
    await next();
  };
}
