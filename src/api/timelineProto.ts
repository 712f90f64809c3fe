/** @file proto/timeline.proto loaded at run time: the timeline service's gRPC definition, for its server and the API's client. */
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { projectRoot } from '../config';
import type { Tweet } from '../db/repositories/tweets';

export const TIMELINE_PROTO = path.join(projectRoot, 'proto', 'timeline.proto');

/** GetTimelineRequest as proto-loader gives it (camelCase fields; an absent `before` is undefined). */
export interface GetTimelineRequest {
  userId: string;
  limit: number;
  before?: string;
}

/** TimelinePage as proto-loader gives it: the REST answer's shape, `nextCursor` absent on the last page. */
export interface GrpcTimelinePage {
  items: Tweet[];
  nextCursor?: string;
}

let loaded: grpc.ServiceClientConstructor | undefined;

/**
 * The Timelines service's constructor (its `.service` is the definition a
 * server adds). Fields camelCase, so a page is the REST answer's shape;
 * proto3 defaults filled in (an empty text is ''), an unset optional left
 * undefined.
 */
export function timelineService(): grpc.ServiceClientConstructor {
  if (!loaded) {
    const definition = protoLoader.loadSync(TIMELINE_PROTO, { keepCase: false, longs: String, enums: String, defaults: true, oneofs: false });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as { warren: { timeline: { v1: { Timelines: grpc.ServiceClientConstructor } } } };
    loaded = pkg.warren.timeline.v1.Timelines;
  }
  return loaded;
}
