/** @file A page of a home timeline as the timeline service serves it, over REST and gRPC alike. */
import type { Knex } from 'knex';
import type { Config } from '../config';
import { isUuid } from '../domain/ids';
import { readHomeTimeline } from '../db/repositories/timelines';
import type { Tweet } from '../db/repositories/tweets';
import { decodeCursor, listQuery, parseRequest, toPage } from '../api/validation';

/**
 * A page of `userId`'s home timeline for `params` as a query gives them
 * (text, `limit` 1-100 defaulting to 20, `before` a `nextCursor`), the
 * same over REST and gRPC: undefined for an id that is not a UUID,
 * ValidationError for a parameter out of its rules. Any UUID has a
 * timeline (empty for an unknown user): whether the user exists is the API's to say.
 */
export async function timelinePage(
  db: Knex,
  config: Config,
  userId: string,
  params: Record<string, unknown>,
): Promise<{ items: Tweet[]; nextCursor: string | null } | undefined> {
  if (!isUuid(userId)) return undefined;
  const page = parseRequest(listQuery, params, 'query');
  const beforeId = decodeCursor(page.before);
  const rows = await readHomeTimeline(db, userId, { limit: page.limit, beforeId }, config.timeline.maxEntries);
  return toPage(rows, page.limit);
}
