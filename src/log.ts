import pino from 'pino';

export type Logger = pino.Logger;

/** Structured JSON logs on stdout, one logger per process, named after the service. */
export function createLogger(name: string, level: string = process.env.WARREN_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name, level, base: { pid: process.pid, service: name } });
}
