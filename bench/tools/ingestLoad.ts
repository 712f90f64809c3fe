import autocannon from 'autocannon';
import { tweetText } from '../lib/tweets';

/**
 * Closed-loop ingest load with autocannon: `connections` clients each send
 * `POST /tweets` back to back for `durationSec` (after an unrecorded
 * warm-up). Tokens, when given, rotate over the requests. Prints one JSON
 * line: accepted req/s and latency percentiles.
 */
interface Input {
  url: string;
  connections: number;
  durationSec: number;
  warmupSec: number;
  tokens?: string[];
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
  const r = await run(input, input.durationSec);
  const ok = r['2xx'];
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
    }) + '\n',
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
