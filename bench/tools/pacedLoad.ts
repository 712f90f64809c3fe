import fs from 'node:fs';
import http from 'node:http';
import { distribution, nowMs, sleep } from '../lib/stats';
import { tweetText } from '../lib/tweets';

/**
 * Open-loop load at a steady rate: request i is sent at start + i/rate,
 * whatever happened to the ones before (autocannon's rate limit sends each
 * second's quota back to back at the tick, which measures bursts, not a
 * steady rate). At most `maxInFlight` requests are open; past that the load
 * falls behind schedule and says by how much. Bounded by `durationSec`.
 * Writes one line per accepted tweet to `recordFile` ("<tweetId> <ms at 201>")
 * and prints one JSON summary line.
 */
interface Input {
  baseUrl: string;
  tokens: string[];
  rate: number;
  durationSec: number;
  maxInFlight: number;
  recordFile?: string;
  /** Offset of the tweet text numbering, so runs do not repeat texts. */
  firstIndex?: number;
}

function post(agent: http.Agent, url: URL, token: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: '/tweets',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Bearer ${token}` },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', () => resolve({ status: 0, text: '' }));
      },
    );
    req.setTimeout(30_000, () => req.destroy());
    req.on('error', () => resolve({ status: 0, text: '' }));
    req.end(body);
  });
}

async function main(): Promise<void> {
  const input = JSON.parse(process.argv[2] ?? '{}') as Input;
  const url = new URL(input.baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: input.maxInFlight });
  const total = Math.round(input.rate * input.durationSec);
  const records: string[] = [];
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const inFlight = new Set<Promise<void>>();
  let maxBehind = 0;
  const start = nowMs();
  // Bounded in time as well as count: nothing is sent after the planned duration.
  const deadline = start + input.durationSec * 1000 + 500;
  for (let i = 0; i < total && nowMs() < deadline; i++) {
    const due = start + (i * 1000) / input.rate;
    const wait = due - nowMs();
    if (wait > 1) await sleep(wait);
    while (inFlight.size >= input.maxInFlight) await Promise.race(inFlight);
    maxBehind = Math.max(maxBehind, nowMs() - due);
    const n = (input.firstIndex ?? 0) + i;
    const sent = nowMs();
    const p = post(agent, url, input.tokens[n % input.tokens.length]!, JSON.stringify({ text: tweetText(n) })).then(({ status, text }) => {
      const at = nowMs();
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status !== 201) return;
      latencies.push(at - sent);
      const id = (JSON.parse(text) as { id: string }).id;
      records.push(`${id} ${at.toFixed(3)}`);
    });
    const tracked = p.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  }
  const sentAll = nowMs();
  await Promise.all(inFlight);
  agent.destroy();
  if (input.recordFile) fs.writeFileSync(input.recordFile, records.join('\n') + '\n');
  const d = distribution(latencies);
  process.stdout.write(
    JSON.stringify({
      attempted: Object.values(statuses).reduce((a, b) => a + b, 0),
      accepted: latencies.length,
      statuses,
      achievedRate: latencies.length / ((sentAll - start) / 1000),
      sendSeconds: (sentAll - start) / 1000,
      maxBehindMs: maxBehind,
      p50: d.p50,
      p99: d.p99,
      max: d.max,
    }) + '\n',
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
