/** @file
 * The console's access rule, in one place: every `/api/v1/` request needs
 * an operator token (`Authorization: Bearer wrc_...`, 401 without a valid
 * one), and every request that is not a read needs the `operator` role
 * (403 for a `viewer`).
 */
import type { Knex } from 'knex';
import type { Middleware } from 'koa';
import { ForbiddenError, UnauthorizedError } from '../domain/errors';
import type { ConsoleState } from './context';
import { findOperator } from './operatorTokens';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function requireOperatorToken(db: Knex): Middleware<ConsoleState> {
  return async (ctx, next) => {
    const token = /^Bearer +(\S+) *$/i.exec(ctx.get('authorization'))?.[1];
    const operator = token ? await findOperator(db, token) : undefined;
    if (!operator) throw new UnauthorizedError('a valid operator token is required (warren console token create)');
    ctx.state.operator = operator;
    if (!READS.has(ctx.method) && operator.role !== 'operator')
      throw new ForbiddenError(`${operator.name} is a viewer: only an operator token may change anything`);
    await next();
  };
}
