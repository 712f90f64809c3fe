/** @file The API's timeline client alone (no outer HTTP request): closed-loop page calls over REST or gRPC, with both sides' CPU per call. */
import { TimelineClient } from '../../src/api/timelineClient';
import { grpcTransport } from '../../src/api/timelineGrpcClient';
import { createLogger } from '../../src/log';
import { cpuOf } from '../lib/procCpu';
import { distribution } from '../lib/stats';

/**
 * `concurrency` loops each call `page(user, { limit: 20 })` back to back
 * for `durationSec` (after an unrecorded warm-up) through the same
 * TimelineClient the API uses, over `protocol`, the user rotating over
 * `userIds`. Prints one JSON line: calls per second, latency percentiles,
 * and the CPU per call of this process (`client`, from process.cpuUsage)
 * and of each process in `pids` (the timeline service), from /proc.
 */
interface Input {
  protocol: 'rest' | 'grpc';
  url: string;
  userIds: string[];
  concurrency: number;
  durationSec: number;
  warmupSec: number;
  deadlineMs: number;
  pids: Record<string, number>;
}

async function loop(
  client: TimelineClient,
  input: Input,
  until: number,
  latencies: number[] | undefined,
  counts: { ok: number; failed: number },
  offset: number,
): Promise<void> {
  for (let i = offset; Date.now() < until; i += input.concurrency) {
    const started = performance.now();
    try {
      await client.page(input.userIds[i % input.userIds.length]!, { limit: 20 });
      counts.ok++;
      latencies?.push(performance.now() - started);
    } catch {
      counts.failed++;
    }
  }
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '{}') as Input;
  const client = new TimelineClient({
    urls: [input.url],
    deadlineMs: input.deadlineMs,
    log: createLogger('bench-timeline-raw', 'warn'),
    ...(input.protocol === 'grpc' ? { transport: grpcTransport } : {}),
  });
  const round = async (seconds: number, latencies?: number[]) => {
    const counts = { ok: 0, failed: 0 };
    const until = Date.now() + seconds * 1000;
    await Promise.all(Array.from({ length: input.concurrency }, (_, k) => loop(client, input, until, latencies, counts, k)));
    return counts;
  };
  if (input.warmupSec > 0) await round(input.warmupSec);
  const latencies: number[] = [];
  const [before, startedAt] = [cpuOf(input.pids), performance.now()];
  const counts = await round(input.durationSec, latencies);
  const [after, endedAt] = [cpuOf(input.pids), performance.now()];
  await client.close();
  const durationS = (endedAt - startedAt) / 1000;
  const d = distribution(latencies);
  const perCall = (k: string) => ((after[k]! - before[k]!) * 1e6) / counts.ok;
  process.stdout.write(
    JSON.stringify({
      calls: counts.ok,
      failed: counts.failed,
      durationS,
      rps: counts.ok / durationS,
      p50: d.p50,
      p99: d.p99,
      max: d.max,
      cpuUsPerCallBy: Object.fromEntries([...Object.keys(input.pids), 'machine'].map((k) => [k, perCall(k)]).concat([['client', perCall('load')]])),
    }) + '\n',
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
