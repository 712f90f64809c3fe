import type { Middleware } from 'koa';
import { UnavailableError } from '../../domain/errors';
import type { ApiDeps, ApiState } from '../context';
import { RETRY_AFTER_SECONDS } from '../unitOfWork';

/**
 * Disk is finite: while more events wait in the outbox than
 * `outbox.maxBacklog` (the broker is away), writes that emit events are
 * refused with 503 and Retry-After instead of growing it further.
 */
export function guardOutboxBacklog(deps: ApiDeps): Middleware<ApiState> {
  return async (_ctx, next) => {
    const backlog = deps.outboxBacklog();
    if (backlog > deps.config.outbox.maxBacklog) {
      throw new UnavailableError(`${backlog} events are waiting to be published; try again later`, RETRY_AFTER_SECONDS, 'outbox_backlog');
    }
    await next();
  };
}
