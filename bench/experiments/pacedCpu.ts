import { cpuSeconds } from '../lib/procCpu';
import { BenchSystem, freePort } from '../lib/system';
import { signUpUsers } from '../lib/users';

/**
 * An experiment, not part of `npm run bench`: where the API's CPU goes at a
 * moderate rate. The writer scenario reports several milliseconds of API CPU
 * per request at 200 req/s, ten times its cost under a closed loop; it
 * measures that right after the closed loop, in the same process. This runs
 * `warren api` (with its relay, no workers) on a fresh SQLite directory and
 * samples its CPU second by second: first while idle, then at a paced
 * 200 req/s, then after a closed loop like the writer scenario's, then paced
 * again, then idle again.
 * Run: `node dist/bench/experiments/pacedCpu.js` (PACED_CPU_PROFILE=<dir> to profile the API as well).
 */
interface PacedFigures {
  accepted: number;
  attempted: number;
}

async function main(): Promise<void> {
  const sys = new BenchSystem();
  await sys.setUp();
  try {
    const store = await sys.sqliteStore('paced-cpu');
    const port = await freePort();
    // PACED_CPU_PROFILE=<dir>: the API runs under node --cpu-prof, its profile written there when it stops.
    const profileDir = process.env.PACED_CPU_PROFILE;
    const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
    const api = sys.warren(['api'], store, { WARREN_HTTP_PORT: String(port) }, { nodeArgs });
    await sys.waitHttp(port);
    const url = `http://127.0.0.1:${port}`;
    const tokens = await signUpUsers(url, 10, 'paced');

    // CPU of the API, one sample per second, while `during` runs.
    const sampled = async (label: string, during: () => Promise<number>) => {
      const samples: number[] = [];
      let last = cpuSeconds(api.pid);
      const timer = setInterval(() => {
        const now = cpuSeconds(api.pid);
        samples.push(Math.round((now - last) * 1000));
        last = now;
      }, 1000);
      const before = cpuSeconds(api.pid);
      const requests = await during();
      clearInterval(timer);
      const total = cpuSeconds(api.pid) - before;
      const perRequest = requests > 0 ? `${Math.round((total * 1e6) / requests)} µs per request` : 'no requests';
      console.log(`${label}: ${total.toFixed(2)} s of CPU, ${perRequest}; CPU ms per second: ${samples.join(' ')}`);
    };
    const idle = (seconds: number) => () => new Promise<number>((r) => setTimeout(() => r(0), seconds * 1000));
    const paced = (first: number) => async () =>
      (await sys.runTool<PacedFigures>('pacedLoad', { baseUrl: url, tokens, rate: 200, durationSec: 10, maxInFlight: 200, firstIndex: first })).accepted;

    await sampled('idle, 5 s', idle(5));
    await sampled('paced 200/s, 10 s, fresh', paced(1_000_000));
    // Profiled, the run ends here: the profile then holds the paced load alone.
    if (profileDir) {
      await api.stop();
      return;
    }
    await sampled('closed loop, 50 connections, 10 s', async () => {
      const figures = await sys.runTool<{ accepted: number }>('ingestLoad', { url, connections: 50, durationSec: 10, warmupSec: 0, tokens });
      return figures.accepted;
    });
    await sampled('paced 200/s, 10 s, after the closed loop', paced(2_000_000));
    await sampled('idle, 10 s, after', idle(10));
    await api.stop();
  } finally {
    await sys.tearDown();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
