import type { Logger } from './log';

/**
 * On SIGTERM/SIGINT: stop taking new work, finish or return what is held,
 * exit 0. A second signal, or a stop that overruns `timeoutMs`, exits 1.
 */
export function onShutdown(log: Logger, timeoutMs: number, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal; exiting now');
      process.exit(1);
    }
    stopping = true;
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
