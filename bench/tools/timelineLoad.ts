/** @file Closed-loop GET /users/:id/timeline with autocannon, with the CPU each named process spent per answered read. */
import autocannon from 'autocannon';
import { cpuOf } from '../lib/procCpu';

/**
 * `connections` clients each send `GET /users/:id/timeline` back to back
 * for `durationSec` (after an unrecorded warm-up), the user rotating over
 * `userIds`. Prints one JSON line: answered reads (200) per second, latency
 * percentiles, and each process of `pids` (the API, the timeline service)
 * CPU time per answered read over the measured run, read from /proc.
 */
interface Input {
  url: string;
  userIds: string[];
  connections: number;
  durationSec: number;
  warmupSec: number;
  pids: Record<string, number>;
}

function run(input: Input, durationSec: number): Promise<autocannon.Result> {
  let i = 0;
  return autocannon({
    url: input.url,
    connections: input.connections,
    duration: durationSec,
    requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: `/users/${input.userIds[i++ % input.userIds.length]}/timeline` }) }],
  });
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '{}') as Input;
  if (input.warmupSec > 0) await run(input, input.warmupSec);
  const before = cpuOf(input.pids);
  const r = await run(input, input.durationSec);
  const after = cpuOf(input.pids);
  const ok = r['2xx'];
  process.stdout.write(
    JSON.stringify({
      calls: ok,
      failed: r.non2xx + r.errors + r.timeouts,
      durationS: r.duration,
      rps: ok / r.duration,
      p50: r.latency.p50,
      p99: r.latency.p99,
      max: r.latency.max,
      cpuUsPerCallBy: Object.fromEntries(Object.keys(after).map((k) => [k, ((after[k]! - before[k]!) * 1e6) / ok])),
    }) + '\n',
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
