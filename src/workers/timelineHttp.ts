/** @file The timeline service's HTTP: GET /timelines/:userId for the API, beside the worker's probes and metrics. */
import { isUuid } from '../domain/ids';
import { ValidationError } from '../domain/errors';
import { readHomeTimeline } from '../db/repositories/timelines';
import { decodeCursor, listQuery, parseRequest, toPage } from '../api/validation';
import type { WorkerHttp } from './declaration';

const TIMELINE_PATH = /^\/timelines\/([^/]+)$/;

/**
 * `GET /timelines/:userId?limit&before` on `timeline.port` (bound to
 * `timeline.host`), with the API's list shape and cursor rules: `{ items,
 * nextCursor }`, `limit` 1-100 (default 20), `before` a `nextCursor`, any
 * other value 400. It answers for any id (an unknown user has an empty
 * timeline): whether the user exists is the API's to say. No auth: the API
 * is its only caller, so it listens on 127.0.0.1 unless configured.
 */
export const timelineHttp: WorkerHttp = {
  listen: (config) => ({ host: config.timeline.host, port: config.timeline.port }),
  childEnv: (config, index): Record<string, string> => (config.timeline.port > 0 ? { WARREN_TIMELINE_PORT: String(config.timeline.port + index) } : {}),
  routes: ({ db, config }) => {
    return (method, path, query) => {
      const match = TIMELINE_PATH.exec(path);
      if (!match) return undefined;
      return (async () => {
        if (method !== 'GET' && method !== 'HEAD') return { status: 405, body: { error: { code: 'method_not_allowed', message: 'GET only' } } };
        const userId = match[1]!;
        if (!isUuid(userId)) return { status: 404, body: { error: { code: 'not_found', message: 'no such user' } } };
        try {
          // A repeated parameter is a list, as Koa parses it for the API: refused like there.
          const params = Object.fromEntries([...new Set(query.keys())].map((k) => [k, query.getAll(k).length > 1 ? query.getAll(k) : query.get(k)]));
          const page = parseRequest(listQuery, params, 'query');
          const beforeId = decodeCursor(page.before);
          const rows = await readHomeTimeline(db, userId, { limit: page.limit, beforeId }, config.timeline.maxEntries);
          return { status: 200, body: toPage(rows, page.limit) };
        } catch (err) {
          if (err instanceof ValidationError) return { status: 400, body: { error: { code: err.code, message: err.message, details: err.details } } };
          throw err;
        }
      })();
    };
  },
};
