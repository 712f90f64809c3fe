import pino from 'pino';

export type Logger = pino.Logger;

export type LogFormat = 'json' | 'pretty';

/**
 * JSON for machines (a pipe, a file, a log shipper), pino-pretty for a person
 * at a terminal or in development. `WARREN_LOG_FORMAT` (`json` | `pretty`)
 * overrides either way.
 */
export function logFormat(env: NodeJS.ProcessEnv = process.env, stdoutIsTTY: boolean = process.stdout.isTTY === true): LogFormat {
  const forced = env.WARREN_LOG_FORMAT;
  if (forced === 'json' || forced === 'pretty') return forced;
  return stdoutIsTTY || env.NODE_ENV === 'development' ? 'pretty' : 'json';
}

function prettyAvailable(): boolean {
  try {
    require.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

/** Colour only at a terminal, and never while NO_COLOR is set to anything (https://no-color.org). */
export function useColor(env: NodeJS.ProcessEnv = process.env, stdoutIsTTY: boolean = process.stdout.isTTY === true): boolean {
  return stdoutIsTTY && !env.NO_COLOR;
}

/**
 * The pino-pretty transport when logs are to be pretty and pino-pretty is
 * there; it is a development dependency, so an installation without it (the
 * image: `npm prune --omit=dev`) logs JSON, which is what it wants anyway.
 */
export function prettyTransport(
  env: NodeJS.ProcessEnv = process.env,
  stdoutIsTTY: boolean = process.stdout.isTTY === true,
  available: () => boolean = prettyAvailable,
): pino.TransportSingleOptions | undefined {
  if (logFormat(env, stdoutIsTTY) !== 'pretty' || !available()) return undefined;
  return {
    target: 'pino-pretty',
    options: { destination: 1, colorize: useColor(env, stdoutIsTTY), translateTime: 'SYS:HH:MM:ss.l', ignore: 'hostname,service' },
  };
}

/**
 * Structured logs on stdout, one logger per process, named after the
 * service, written asynchronously. `destination` is for tests (always JSON).
 */
export function createLogger(name: string, level: string = process.env.WARREN_LOG_LEVEL ?? 'info', destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = { name, level, base: { pid: process.pid, service: name } };
  if (destination) return pino(options, destination);
  const pretty = level === 'silent' ? undefined : prettyTransport();
  // A transport formats in a worker thread, off the event loop that serves requests and messages.
  if (pretty) return pino({ ...options, transport: pretty });
  // Asynchronous writes: lines logged while one write is under way go out
  // together in the next, instead of one write call per line on the event
  // loop. pino flushes what is left synchronously when the process exits (an
  // exit call, a fatal error); only a SIGKILL can lose the last lines.
  return pino(options, pino.destination({ dest: 1, sync: false }));
}

// The same rule the API applies to a traceparent it receives.
const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * What a delivery says of where it came from: AMQP properties as amqplib
 * gives them (traceparent among the headers), or a decoded message.
 */
export interface DeliveryOrigin {
  correlationId?: unknown;
  headers?: Record<string, unknown> | undefined;
  traceparent?: unknown;
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string' && value) return value;
  if (Buffer.isBuffer(value) && value.length) return value.toString('utf8');
  return undefined;
}

/**
 * The logger for every line about one delivery: it carries the id of the
 * HTTP request that caused the message (its `correlation_id`, logged as
 * `requestId` as the API logs it), and the trace of its `traceparent`, so one search for the request id finds the API's line and
 * the worker's.
 */
export function deliveryLogger(log: Logger, origin: DeliveryOrigin): Logger {
  const bindings: Record<string, string> = {};
  const requestId = text(origin.correlationId);
  if (requestId) bindings.requestId = requestId;
  const trace = TRACEPARENT.exec(text(origin.traceparent ?? origin.headers?.traceparent) ?? '');
  if (trace) bindings.traceId = trace[1]!;
  return log.child(bindings);
}
