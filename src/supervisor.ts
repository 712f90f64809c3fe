import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { Logger } from './log';

export interface ChildSpec {
  /** How the child is named in logs (`worker analytics #2`). */
  name: string;
  /** Arguments to the warren CLI (`['worker', 'analytics']`). */
  args: string[];
  /** Environment of this child only (e.g. its own health port). */
  env?: NodeJS.ProcessEnv;
}

export interface SupervisorOptions {
  log: Logger;
  restartMinMs: number;
  restartMaxMs: number;
  stopTimeoutMs: number;
  env?: NodeJS.ProcessEnv;
}

/** A child that ran this long is healthy again: its next crash restarts at the minimum delay. */
const STABLE_AFTER_MS = 30_000;

const cliPath = path.join(__dirname, 'cli.js');

/** Exponential backoff between restarts of a child that keeps dying. */
export function restartDelay(consecutiveFailures: number, minMs: number, maxMs: number): number {
  return Math.min(maxMs, minMs * 2 ** Math.max(0, consecutiveFailures - 1));
}

/**
 * Runs each child as its own process, restarts one that dies (with backoff,
 * logged), and on SIGTERM/SIGINT stops them all gracefully: SIGTERM, then
 * SIGKILL after `stopTimeoutMs`. Resolves with 0 when every child exited 0.
 */
export function supervise(specs: ChildSpec[], opts: SupervisorOptions): Promise<number> {
  const { log } = opts;
  let stopping = false;
  let worstExit = 0;
  const running = new Map<ChildSpec, ChildProcess>();
  const timers = new Set<NodeJS.Timeout>();

  return new Promise((resolve) => {
    const start = (spec: ChildSpec, failures: number) => {
      const startedAt = Date.now();
      const child = spawn(process.execPath, ['--enable-source-maps', cliPath, ...spec.args], {
        stdio: 'inherit',
        env: { ...(opts.env ?? process.env), ...(spec.env ?? {}), WARREN_SUPERVISED: '1' },
      });
      running.set(spec, child);
      log.info({ child: spec.name, childPid: child.pid }, 'child started');
      child.on('exit', (code, signal) => {
        running.delete(spec);
        if (stopping) {
          if (code !== 0) worstExit = 1;
          log.info({ child: spec.name, code, signal }, 'child stopped');
          if (running.size === 0) finish();
          return;
        }
        const nextFailures = Date.now() - startedAt > STABLE_AFTER_MS ? 1 : failures + 1;
        const delay = restartDelay(nextFailures, opts.restartMinMs, opts.restartMaxMs);
        log.error({ child: spec.name, code, signal, restartInMs: delay }, 'child died; restarting');
        const timer = setTimeout(() => {
          timers.delete(timer);
          if (!stopping) start(spec, nextFailures);
        }, delay);
        timers.add(timer);
      });
    };

    const finish = () => {
      process.removeListener('SIGTERM', stop);
      process.removeListener('SIGINT', stop);
      resolve(worstExit);
    };

    const stop = () => {
      if (stopping) return;
      stopping = true;
      log.info({ children: running.size }, 'stopping children');
      for (const t of timers) clearTimeout(t);
      if (running.size === 0) return finish();
      for (const child of running.values()) child.kill('SIGTERM');
      setTimeout(() => {
        for (const [spec, child] of running) {
          log.error({ child: spec.name }, 'child did not stop in time; killing it');
          worstExit = 1;
          child.kill('SIGKILL');
        }
      }, opts.stopTimeoutMs).unref();
    };

    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    for (const spec of specs) start(spec, 0);
  });
}
