/** @file The timeline client's gRPC transport: Timelines.GetTimeline (proto/timeline.proto) on one HTTP/2 channel per instance. */
import * as grpc from '@grpc/grpc-js';
import { AttemptError, type TimelineTransport } from './timelineClient';
import { timelineService, type GetTimelineRequest, type GrpcTimelinePage } from './timelineProto';

type GetTimeline = (request: GetTimelineRequest, callback: (err: grpc.ServiceError | null, page?: GrpcTimelinePage) => void) => grpc.ClientUnaryCall;

/**
 * gRPC (timeline.protocol `grpc`): each instance is a channel to its
 * address (`host:port` of its base URL; no TLS, like the REST call on the
 * same private network), its authority the configured host, calls
 * multiplexed on one kept-alive HTTP/2 connection. A call is cancelled when
 * the client's signal aborts (its share of the deadline), so the server
 * stops too; any status but OK is a failed attempt. A page comes back in
 * the REST answer's shape (`nextCursor` null on the last page).
 */
export const grpcTransport: TimelineTransport = {
  connect(base, host) {
    const Timelines = timelineService();
    const client = new Timelines(base.host, grpc.credentials.createInsecure(), {
      'grpc.default_authority': host,
      'grpc.keepalive_time_ms': 30_000,
      // A reconnect to an instance back from a restart is tried within a second, not after grpc's default backoff of up to 120 s.
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 1000,
    });
    const getTimeline = (client['GetTimeline'] as GetTimeline).bind(client);
    return {
      page: (userId, query, signal) =>
        new Promise((resolve, reject) => {
          if (signal.aborted) return reject(new AttemptError('aborted'));
          const request: GetTimelineRequest = { userId, limit: query.limit, ...(query.before === undefined ? {} : { before: query.before }) };
          const call = getTimeline(request, (err, page) => {
            signal.removeEventListener('abort', cancel);
            if (err) return reject(new AttemptError(`answered ${grpc.status[err.code] ?? err.code}`));
            resolve({ items: page?.items, nextCursor: page?.nextCursor ?? null });
          });
          const cancel = () => call.cancel();
          signal.addEventListener('abort', cancel, { once: true });
        }),
      close: async () => client.close(),
    };
  },
};
