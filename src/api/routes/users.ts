import { Router } from '@koa/router';
import { ConflictError, NotFoundError } from '../../domain/errors';
import { newId } from '../../domain/ids';
import { handleKey } from '../../domain/text';
import { isUniqueViolation } from '../../db/repositories/errors';
import { findUserById, findUserByHandleKey, insertUser, toUser, updateUser, type UserRow } from '../../db/repositories/users';
import type { ApiDeps, ApiState } from '../context';
import { issueToken, requireAuth, requireSelf } from '../middleware/auth';
import { idempotencyKey } from '../middleware/idempotency';
import { requireUuidParams } from '../middleware/pathIds';
import { guardOutboxBacklog } from '../middleware/outboxBacklog';
import { commitWrite } from '../unitOfWork';
import { createUserBody, parseRequest, patchUserBody } from '../validation';
import { followRoutes } from './follows';
import { tokenRoutes } from './tokens';

function handleTaken(): ConflictError {
  return new ConflictError('that handle is taken (handles are unique regardless of case)', 'handle_taken');
}

/** A concurrent writer can still win the handle between our check and our write. */
function asHandleTaken(err: unknown): never {
  throw isUniqueViolation(err) ? handleTaken() : err;
}

/** Users, their profile and their API tokens. */
export function userRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();
  const auth = requireAuth(deps);
  const userId = requireUuidParams({ id: 'user' });
  const backlog = guardOutboxBacklog(deps);

  // Sign-up has no caller to name but its address: a replay holds the new user's
  // token, so another client that happens on the same key must never get it.
  router.post(
    '/users',
    idempotencyKey(deps, (ctx) => `address ${ctx.ip}`),
    backlog,
    async (ctx) => {
      const input = parseRequest(createUserBody, ctx.state.body);
      await commitWrite(ctx, deps, async (tx, emit, now) => {
        const at = now.toISOString();
        const row: UserRow = {
          id: newId(),
          handle: input.handle,
          handle_key: handleKey(input.handle),
          display_name: input.displayName,
          bio: input.bio ?? null,
          created_at: at,
          updated_at: at,
        };
        if (await findUserByHandleKey(tx, row.handle_key)) throw handleTaken();
        await insertUser(tx, row).catch(asHandleTaken);
        const { token } = await issueToken(tx, row.id, now, deps.config.auth.tokenTtlDays);
        emit('user.created', { userId: row.id, handle: row.handle, displayName: row.display_name, createdAt: at });
        return { status: 201, body: { user: toUser(row), token } };
      });
    },
  );

  router.get('/users/:id', userId, async (ctx) => {
    const row = await findUserById(deps.db, ctx.params.id!);
    if (!row) throw new NotFoundError('user');
    ctx.body = toUser(row);
  });

  router.patch('/users/:id', auth, userId, requireSelf, backlog, async (ctx) => {
    const patch = parseRequest(patchUserBody, ctx.state.body);
    const id = ctx.params.id!;
    await commitWrite(ctx, deps, async (tx, emit, now) => {
      const current = await findUserById(tx, id);
      if (!current) throw new NotFoundError('user');
      const changes: Record<string, { from: unknown; to: unknown }> = {};
      const update: Partial<UserRow> = {};
      if (patch.handle !== undefined && patch.handle !== current.handle) {
        const owner = await findUserByHandleKey(tx, handleKey(patch.handle));
        if (owner && owner.id !== id) throw handleTaken();
        changes.handle = { from: current.handle, to: patch.handle };
        update.handle = patch.handle;
        update.handle_key = handleKey(patch.handle);
      }
      if (patch.displayName !== undefined && patch.displayName !== current.display_name) {
        changes.displayName = { from: current.display_name, to: patch.displayName };
        update.display_name = patch.displayName;
      }
      if (patch.bio !== undefined && patch.bio !== current.bio) {
        changes.bio = { from: current.bio, to: patch.bio };
        update.bio = patch.bio;
      }
      // Nothing changed: no write, no event, same answer.
      if (Object.keys(changes).length === 0) return { status: 200, body: toUser(current) };
      update.updated_at = now.toISOString();
      await updateUser(tx, id, update).catch(asHandleTaken);
      emit('user.updated', { userId: id, changes, updatedAt: update.updated_at });
      return { status: 200, body: toUser({ ...current, ...update }) };
    });
  });

  router.use(tokenRoutes(deps).routes());
  router.use(followRoutes(deps).routes());
  return router;
}
