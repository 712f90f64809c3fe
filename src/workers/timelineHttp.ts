/** @file The timeline service's HTTP: GET /timelines/:userId for the API, beside the worker's probes and metrics. */
import { ValidationError } from '../domain/errors';
import type { WorkerHttp } from './declaration';
import { timelinePage } from './timelineRead';

const TIMELINE_PATH = /^\/timelines\/([^/]+)$/;

/**
 * `GET /timelines/:userId?limit&before` on `timeline.port` (bound to
 * `timeline.host`), with the API's list shape and cursor rules: `{ items,
 * nextCursor }`, `limit` 1-100 (default 20), `before` a `nextCursor`, any
 * other value 400. It answers for any id (an unknown user has an empty
 * timeline): whether the user exists is the API's to say. No auth: the API
 * is its only caller, so it listens on 127.0.0.1 unless configured. The
 * same call over gRPC on `timeline.grpcPort` (src/workers/timelineGrpc.ts).
 */
export const timelineHttp: WorkerHttp = {
  listen: (config) => ({ host: config.timeline.host, port: config.timeline.port }),
  childEnv: (config, index): Record<string, string> => ({
    ...(config.timeline.port > 0 ? { WARREN_TIMELINE_PORT: String(config.timeline.port + index) } : {}),
    ...(config.timeline.grpcPort > 0 ? { WARREN_TIMELINE_GRPC_PORT: String(config.timeline.grpcPort + index) } : {}),
  }),
  routes: ({ db, config }) => {
    return (method, path, query) => {
      const match = TIMELINE_PATH.exec(path);
      if (!match) return undefined;
      return (async () => {
        if (method !== 'GET' && method !== 'HEAD') return { status: 405, body: { error: { code: 'method_not_allowed', message: 'GET only' } } };
        try {
          // A repeated parameter is a list, as Koa parses it for the API: refused like there.
          const params = Object.fromEntries([...new Set(query.keys())].map((k) => [k, query.getAll(k).length > 1 ? query.getAll(k) : query.get(k)]));
          const page = await timelinePage(db, config, match[1]!, params);
          if (!page) return { status: 404, body: { error: { code: 'not_found', message: 'no such user' } } };
          return { status: 200, body: page };
        } catch (err) {
          if (err instanceof ValidationError) return { status: 400, body: { error: { code: err.code, message: err.message, details: err.details } } };
          throw err;
        }
      })();
    };
  },
  serveMore: async ({ db, config, log }) => {
    if (config.timeline.grpcPort === 0) return undefined;
    // Loaded here: gRPC costs every other process that reads the registry (the CLI, the other workers) nothing.
    const { serveTimelineGrpc } = await import('./timelineGrpc.js');
    return serveTimelineGrpc({ host: config.timeline.host, port: config.timeline.grpcPort, db, config, log });
  },
};
