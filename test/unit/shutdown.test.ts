/**
 * @file A stop that reaches a process twice: a supervised child (under
 * `warren start`) gets a terminal's Ctrl-C and then its supervisor's SIGTERM.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';

const shutdownModule = path.join(__dirname, '..', '..', 'src', 'shutdown.js');

/** A process whose stop takes 500 ms; it prints `ready` once its handlers are in place. */
function stoppingProcess(env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string; send(signals: NodeJS.Signals[]): void }> {
  const script = `
    const { onShutdown } = require(${JSON.stringify(shutdownModule)});
    const log = { info() {}, warn(o, m) { process.stdout.write(m + '\\n'); }, error() {} };
    onShutdown(log, 10000, () => new Promise((r) => setTimeout(r, 500)));
    setInterval(() => {}, 1000);
    process.stdout.write('ready\\n');`;
  const child = spawn(process.execPath, ['-e', script], { env: { PATH: process.env.PATH, ...env } });
  let out = '';
  return new Promise((resolve) => {
    let sent = false;
    const handle = {
      code: null as number | null,
      out: '',
      send(signals: NodeJS.Signals[]) {
        signals.forEach((s, i) => setTimeout(() => child.kill(s), i * 50));
      },
    };
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!sent && out.includes('ready')) {
        sent = true;
        resolve(handle);
      }
    });
    child.on('exit', (code) => {
      handle.code = code;
      handle.out = out;
    });
  });
}

async function exitOf(env: NodeJS.ProcessEnv, signals: NodeJS.Signals[]): Promise<{ code: number | null; out: string }> {
  const p = await stoppingProcess(env);
  p.send(signals);
  const deadline = Date.now() + 5000;
  while (p.code === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return { code: p.code, out: p.out };
}

describe('shutdown', function () {
  this.timeout(10_000);

  it('finishes the stop and exits 0 when a supervised child gets Ctrl-C and then its supervisor SIGTERM', async () => {
    const { code, out } = await exitOf({ WARREN_SUPERVISED: '1' }, ['SIGINT', 'SIGTERM']);
    expect(out).to.not.include('second signal');
    expect(code).to.equal(0);
  });

  it('exits 1 at once on a second signal when no supervisor started it', async () => {
    const { code, out } = await exitOf({}, ['SIGINT', 'SIGTERM']);
    expect(out).to.include('second signal; exiting now');
    expect(code).to.equal(1);
  });
});
