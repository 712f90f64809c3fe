import type { Router } from '@koa/router';
import type { Middleware } from 'koa';
import type { Tracing } from '../../observability/tracing';
import type { ApiState } from '../context';
import { routePattern } from './httpMetrics';

/**
 * The server span of each request, when tracing is on (the app installs
 * this middleware only then): the child of the caller's `traceparent` and
 * `tracestate` when they are valid, current for everything the request
 * does, so its outbox write (src/api/unitOfWork.ts) is its child. Named
 * after the route pattern once the error mapping has settled the status.
 */
export function httpTracing(tracing: Tracing, router: Router<ApiState>): Middleware<ApiState> {
  return async (ctx, next) => {
    const span = tracing.httpServer({
      method: ctx.method,
      path: ctx.path,
      scheme: ctx.protocol,
      traceparent: ctx.get('traceparent'),
      tracestate: ctx.headers.tracestate,
    });
    span.set('warren.request_id', ctx.state.requestId);
    ctx.state.span = span;
    // The access log names the trace the spans are in (a new one has the SDK's id, not the request id's).
    ctx.state.traceId = span.traceId;
    let failure: unknown;
    try {
      await span.run(next);
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      const route = routePattern(router, ctx.path, ctx.method);
      tracing.httpAnswered(span, ctx.method, route === 'unmatched' ? undefined : route, failure === undefined ? ctx.status : 500);
      span.end(failure);
    }
  };
}
