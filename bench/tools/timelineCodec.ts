/** @file The timeline page's encodings alone: its size and an encode + decode in JSON (the REST answer) and protobuf (the gRPC answer). */
import * as protoLoader from '@grpc/proto-loader';
import { TIMELINE_PROTO } from '../../src/api/timelineProto';

/**
 * A full page of 20 entries shaped like the protocols scenario's (UUIDv7
 * ids, a handle, a short text, an ISO instant, a cursor), encoded and
 * decoded `rounds` times each way in this process. Prints one JSON line:
 * bytes and microseconds per round trip of each.
 */
function main(): void {
  const rounds = Number(process.argv[2] ?? 20_000);
  const page = {
    items: Array.from({ length: 20 }, (_, i) => ({
      id: `0190a5c8-7a4e-7c3b-8f00-0000000000${String(i).padStart(2, '0')}`,
      authorId: '0190a5c8-7a4e-7c3b-8f00-000000000001',
      authorHandle: 'proto_12',
      text: 'timeline read 3 from #Warren',
      createdAt: '2026-12-04T19:36:30.123Z',
    })),
    nextCursor: 'MDE5MGE1YzgtN2E0ZS03YzNiLThmMDAtMDAwMDAwMDAwMDE5',
  };
  const definition = protoLoader.loadSync(TIMELINE_PROTO, { keepCase: false, defaults: true });
  const codec = definition['warren.timeline.v1.TimelinePage'] as protoLoader.MessageTypeDefinition<typeof page, unknown>;
  const time = (fn: () => unknown) => {
    for (let i = 0; i < 1000; i++) fn();
    const started = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) fn();
    return Number(process.hrtime.bigint() - started) / rounds / 1000;
  };
  process.stdout.write(
    JSON.stringify({
      jsonBytes: Buffer.byteLength(JSON.stringify(page)),
      protobufBytes: codec.serialize(page).length,
      jsonRoundTripUs: time(() => JSON.parse(JSON.stringify(page))),
      protobufRoundTripUs: time(() => codec.deserialize(codec.serialize(page))),
    }) + '\n',
  );
}

main();
