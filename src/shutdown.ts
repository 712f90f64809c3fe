import type { Logger } from './log';

/** How soon after the first a supervised process takes a second signal for the same stop. */
const SAME_STOP_MS = 2000;

/**
 * On SIGTERM/SIGINT: stop taking new work, finish or return what is held,
 * exit 0. A second signal, or a stop that overruns `timeoutMs`, exits 1; a
 * supervised child takes a second signal within SAME_STOP_MS of the first
 * for the same stop.
 */
export function onShutdown(log: Logger, timeoutMs: number, stop: () => Promise<void>): void {
  let stopping = false;
  let firstAt = 0;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      // Under `warren start` a terminal's Ctrl-C reaches the whole process group, then the supervisor's SIGTERM
      // follows: the same stop arriving twice, not an operator insisting.
      if (process.env.WARREN_SUPERVISED === '1' && Date.now() - firstAt < SAME_STOP_MS) return;
      log.warn({ signal }, 'second signal; exiting now');
      process.exit(1);
    }
    stopping = true;
    firstAt = Date.now();
    log.info({ signal }, 'shutting down');
    setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, timeoutMs).unref();
    stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

/** Logs a fatal start-up problem as one line on stderr and exits. */
export function exitWithLine(line: string, code = 1): never {
  process.stderr.write(`${line}\n`);
  process.exit(code);
}
