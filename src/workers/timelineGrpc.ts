/** @file The timeline service's gRPC server: Timelines.GetTimeline (proto/timeline.proto), the same call as GET /timelines/:userId. */
import * as grpc from '@grpc/grpc-js';
import type { Knex } from 'knex';
import type { Config } from '../config';
import { ValidationError } from '../domain/errors';
import type { Logger } from '../log';
import { timelineService, type GetTimelineRequest, type GrpcTimelinePage } from '../api/timelineProto';
import { timelinePage } from './timelineRead';

export interface TimelineGrpcServer {
  /** The port it listens on (the configured one, or the one given for 0 in tests). */
  port: number;
  close(): Promise<void>;
}

/**
 * Serves GetTimeline on `host:port` (timeline.host, timeline.grpcPort),
 * plaintext HTTP/2 for the API only, like the REST port: the page of
 * timelinePage, a limit of 0 (unset) meaning the default. NOT_FOUND for an
 * id that is not a UUID, INVALID_ARGUMENT for a parameter out of its
 * rules, INTERNAL (logged) for anything else. Rejects when it cannot bind.
 * `port` 0 takes a free port (tests).
 */
export async function serveTimelineGrpc(opts: { host: string; port: number; db: Knex; config: Config; log: Logger }): Promise<TimelineGrpcServer> {
  const server = new grpc.Server();
  const getTimeline: grpc.handleUnaryCall<GetTimelineRequest, GrpcTimelinePage> = (call, callback) => {
    const { userId, limit, before } = call.request;
    const params = { ...(limit ? { limit: String(limit) } : {}), ...(before === undefined ? {} : { before }) };
    timelinePage(opts.db, opts.config, userId, params).then(
      (page) => {
        if (!page) return callback({ code: grpc.status.NOT_FOUND, details: 'no such user' });
        callback(null, page.nextCursor === null ? { items: page.items } : { items: page.items, nextCursor: page.nextCursor });
      },
      (err: Error) => {
        if (err instanceof ValidationError) return callback({ code: grpc.status.INVALID_ARGUMENT, details: err.message });
        opts.log.error({ err, userId }, 'GetTimeline failed');
        callback({ code: grpc.status.INTERNAL, details: 'internal error' });
      },
    );
  };
  server.addService(timelineService().service, { GetTimeline: getTimeline });
  const address = opts.host.includes(':') ? `[${opts.host}]:${opts.port}` : `${opts.host}:${opts.port}`;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound))),
  );
  opts.log.info({ host: opts.host, port }, 'timeline gRPC listening');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        // In-flight calls finish; past a few seconds they are cut, so a stop never hangs on a stuck call.
        const force = setTimeout(() => server.forceShutdown(), 5000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
