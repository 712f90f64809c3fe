import { Router } from '@koa/router';
import { NotFoundError } from '../../domain/errors';
import { analyticsTotals, findUserStats, topHashtags, topHashtagsOfUser, topMentionsOfUser, tweetsPerHourSince } from '../../db/repositories/readModels';
import { findUserById } from '../../db/repositories/users';
import type { ApiDeps, ApiState } from '../context';
import { requireUuidParams } from '../middleware/pathIds';
import { parseRequest, topQuery } from '../validation';

const TOP_PER_USER = 10;
const HOUR_MS = 3_600_000;
const SUMMARY_HOURS = 24;

/** The last 24 hour buckets ending with the current one, oldest first. */
function lastHours(now: Date): Date[] {
  const current = Math.floor(now.getTime() / HOUR_MS) * HOUR_MS;
  return Array.from({ length: SUMMARY_HOURS }, (_, i) => new Date(current - (SUMMARY_HOURS - 1 - i) * HOUR_MS));
}

/** The analytics read model; counts lag the API by as long as the work queue does. */
export function analyticsRoutes(deps: ApiDeps): Router<ApiState> {
  const router = new Router<ApiState>();

  router.get('/analytics/users/:id', requireUuidParams({ id: 'user' }), async (ctx) => {
    const userId = ctx.params.id!;
    // The api's users table decides existence: a user whose tweets the worker has not counted yet has zeros.
    const user = await findUserById(deps.db, userId);
    if (!user) throw new NotFoundError('user');
    const stats = await findUserStats(deps.db, userId);
    ctx.body = {
      userId,
      handle: user.handle,
      tweetCount: stats.tweetCount,
      lastTweetAt: stats.lastTweetAt,
      topHashtags: await topHashtagsOfUser(deps.db, userId, TOP_PER_USER),
      topMentions: await topMentionsOfUser(deps.db, userId, TOP_PER_USER),
    };
  });

  router.get('/analytics/hashtags', async (ctx) => {
    const query = parseRequest(topQuery, ctx.query, 'query');
    // A top list is not paged; nextCursor is always null.
    ctx.body = { items: await topHashtags(deps.db, query.limit), nextCursor: null };
  });

  router.get('/analytics/summary', async (ctx) => {
    const hours = lastHours(deps.now());
    const counts = await tweetsPerHourSince(deps.db, hours[0]!.toISOString().slice(0, 13));
    ctx.body = {
      totals: await analyticsTotals(deps.db),
      tweetsPerHour: hours.map((h) => ({ hour: h.toISOString(), count: counts.get(h.toISOString().slice(0, 13)) ?? 0 })),
    };
  });

  return router;
}
