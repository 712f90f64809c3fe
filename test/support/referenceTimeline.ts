/** @file The API's old in-process timeline query as a TimelineSource: the reference the timeline service is compared with in tests, never the API's. */
import type { Knex } from 'knex';
import type { TimelineSource } from '../../src/api/timelineClient';
import { decodeCursor, toPage } from '../../src/api/validation';
import { listTimeline } from '../../src/db/repositories/tweets';

/** What the timeline service should answer once every event is applied: the user's and followees' tweets from the API's own tables. */
export function referenceTimeline(db: Knex): TimelineSource {
  return {
    page: async (userId, query) => toPage(await listTimeline(db, userId, { limit: query.limit, beforeId: decodeCursor(query.before) }), query.limit),
    close: async () => undefined,
  };
}
