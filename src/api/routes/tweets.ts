import { Router } from '@koa/router';
import { NotFoundError, ValidationError } from '../../domain/errors';
import { newId } from '../../domain/ids';
import { checkTweetText } from '../../domain/text';
import { findTweetById, tweetRows, type Tweet } from '../../db/repositories/tweets';
import type { ApiDeps, ApiState } from '../context';
import { authUserId, requireAuth } from '../middleware/auth';
import { idempotencyKey } from '../middleware/idempotency';
import { requireUuidParams } from '../middleware/pathIds';
import { guardOutboxBacklog } from '../middleware/outboxBacklog';
import { commitInserts } from '../unitOfWork';
import { createTweetBody, parseRequest } from '../validation';

/** Posting and reading tweets; every new tweet goes to the analytics work queue as `tweet.created`. */
export function tweetRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();

  router.post(
    '/tweets',
    requireAuth(deps),
    idempotencyKey(deps, ({ state }) => state.auth!.userId),
    guardOutboxBacklog(deps),
    async (ctx) => {
      const authorId = authUserId(ctx);
      // The handle as the token lookup found it: the write then reads nothing and joins its group's inserts.
      const authorHandle = ctx.state.auth!.handle;
      const input = parseRequest(createTweetBody, ctx.state.body);
      const checked = checkTweetText(input.text);
      if (!checked.ok) throw new ValidationError(`invalid text: ${checked.message}`, [{ path: 'text', message: checked.message }]);
      await commitInserts(ctx, deps, (emit, now) => {
        const tweet: Tweet = { id: newId(), authorId, authorHandle, text: checked.text, createdAt: now.toISOString() };
        emit('tweet.created', { tweetId: tweet.id, authorId, authorHandle, text: tweet.text, createdAt: tweet.createdAt });
        return {
          inserts: [tweetRows([{ id: tweet.id, author_id: authorId, text: tweet.text, created_at: tweet.createdAt }])],
          result: { status: 201, body: tweet },
        };
      });
    },
  );

  router.get('/tweets/:id', requireUuidParams({ id: 'tweet' }), async (ctx) => {
    const tweet = await findTweetById(deps.db, ctx.params.id!);
    if (!tweet) throw new NotFoundError('tweet');
    ctx.body = tweet;
  });

  return router;
}
