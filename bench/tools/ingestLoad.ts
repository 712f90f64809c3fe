import autocannon from 'autocannon';
import { cpuOf } from '../lib/procCpu';
import { gauge, scrape } from '../lib/stats';
import { tweetText } from '../lib/tweets';

/**
 * Closed-loop ingest load with autocannon: `connections` clients each send
 * `POST /tweets` back to back for `durationSec` (after an unrecorded
 * warm-up). Tokens, when given, rotate over the requests. Prints one JSON
 * line: accepted req/s and latency percentiles and, when the server's pid
 * and metrics URL are given, the server's CPU time per accepted request and
 * its event-loop delay over the measured run.
 */
interface Input {
  url: string;
  connections: number;
  durationSec: number;
  warmupSec: number;
  tokens?: string[];
  /**
   * Processes whose CPU time is read from /proc over the measured run, by
   * name: `server` is the one measured (its figures are cpuUsPerRequest and
   * cpuShare); the others (workers, the broker) show where the rest went.
   */
  pids?: Record<string, number>;
  /** The server's Prometheus endpoint (prom-client default metrics): scraped at the start, which resets its event-loop histogram, and at the end. */
  metricsUrl?: string;
}

function run(input: Input, durationSec: number): Promise<autocannon.Result> {
  let i = 0;
  const tokens = input.tokens ?? [];
  return autocannon({
    url: input.url,
    connections: input.connections,
    duration: durationSec,
    requests: [
      {
        method: 'POST',
        path: '/tweets',
        setupRequest: (req) => {
          const n = i++;
          const headers: Record<string, string> = { 'content-type': 'application/json' };
          if (tokens.length) headers.authorization = `Bearer ${tokens[n % tokens.length]}`;
          return { ...req, headers, body: JSON.stringify({ text: tweetText(n) }) };
        },
      },
    ],
  });
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '{}') as Input;
  if (input.warmupSec > 0) await run(input, input.warmupSec);
  const pids = input.pids ?? {};
  if (input.metricsUrl) await scrape(input.metricsUrl);
  const cpuBefore = cpuOf(pids);
  const r = await run(input, input.durationSec);
  const cpuAfter = cpuOf(pids);
  const metrics = input.metricsUrl ? await scrape(input.metricsUrl) : '';
  const ok = r['2xx'];
  // CPU time per accepted request, by process; `machine` is every process on it, `load` this one (autocannon).
  const cpuUsPerRequestBy = Object.fromEntries(Object.keys(cpuAfter).map((k) => [k, ((cpuAfter[k]! - cpuBefore[k]!) * 1e6) / ok]));
  process.stdout.write(
    JSON.stringify({
      accepted: ok,
      non2xx: r.non2xx,
      errors: r.errors,
      timeouts: r.timeouts,
      durationS: r.duration,
      rps: ok / r.duration,
      p50: r.latency.p50,
      p99: r.latency.p99,
      max: r.latency.max,
      cpuUsPerRequest: cpuUsPerRequestBy.server ?? NaN,
      cpuShare: ((cpuAfter.server ?? NaN) - (cpuBefore.server ?? NaN)) / r.duration,
      cpuUsPerRequestBy,
      loopDelayP99Ms: gauge(metrics, 'nodejs_eventloop_lag_p99_seconds') * 1000,
      loopDelayMeanMs: gauge(metrics, 'nodejs_eventloop_lag_mean_seconds') * 1000,
    }) + '\n',
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
