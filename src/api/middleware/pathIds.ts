import { NotFoundError } from '../../domain/errors';
import { isUuid } from '../../domain/ids';
import type { ApiMiddleware } from '../context';

/**
 * Path ids that are not UUIDs name nothing that can exist: 404 before any
 * lookup or permission check. `names` maps each path parameter to what it names.
 */
export function requireUuidParams(names: Record<string, string>): ApiMiddleware {
  return async (ctx, next) => {
    for (const [param, what] of Object.entries(names)) {
      const value = ctx.params[param];
      if (value === undefined || !isUuid(value)) throw new NotFoundError(what);
    }
    await next();
  };
}
