import type { Middleware } from 'koa';
import type { Logger } from '../../log';
import type { ApiState } from '../context';

/** One line per request, after the error mapping has settled the status. */
export function accessLog(log: Logger): Middleware<ApiState> {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      log.info(
        { requestId: ctx.state.requestId, traceId: ctx.state.traceId, method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms * 10) / 10 },
        'request',
      );
    }
  };
}
