import type { Config } from '../config';
import type { Tracing } from './tracing';

/**
 * Whether a process records spans, and where it sends them. Tracing is off
 * unless it is asked for: `otel.enabled` (WARREN_OTEL_ENABLED), or an OTLP
 * endpoint in the standard variables. OTEL_SDK_DISABLED=true, or
 * OTEL_TRACES_EXPORTER=none, turns it off whatever else says. The OTEL_*
 * variables are the SDK's, not Warren's settings: the configuration loader
 * leaves them alone (it refuses only unknown WARREN_* names), and the
 * exporter reads the endpoint, headers, timeout and compression from them
 * itself.
 */
export class TracingSetupError extends Error {
  constructor(variable: string, detail: string) {
    super(`${variable}: ${detail}`);
    this.name = 'TracingSetupError';
  }
}

export type SpanExporterKind = 'otlp' | 'console';

export interface TracingDecision {
  enabled: boolean;
  exporter: SpanExporterKind;
}

const isTrue = (v: string | undefined) => v?.trim().toLowerCase() === 'true';

/** Pure: what the configuration and the environment ask for, or a TracingSetupError naming what cannot be done. */
export function tracingDecision(otel: Config['otel'], env: NodeJS.ProcessEnv): TracingDecision {
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== '');
  const off = { enabled: false, exporter: 'otlp' as const };
  if (isTrue(env.OTEL_SDK_DISABLED) || exporters.includes('none')) return off;
  const endpoint = Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  if (!otel.enabled && !endpoint) return off;
  const unknown = exporters.filter((e) => e !== 'otlp' && e !== 'console');
  if (unknown.length > 0) throw new TracingSetupError('OTEL_TRACES_EXPORTER', `${unknown.join(', ')} is not an exporter Warren has (otlp, console or none)`);
  if (exporters.length > 1) throw new TracingSetupError('OTEL_TRACES_EXPORTER', 'name one exporter: otlp, console or none');
  const protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? '').trim();
  if (protocol !== '' && protocol !== 'http/json' && protocol !== 'http/protobuf') {
    throw new TracingSetupError(
      env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL',
      `${protocol} is not spoken here: Warren exports OTLP over HTTP (JSON) to the collector's HTTP port (4318 by default)`,
    );
  }
  return { enabled: true, exporter: exporters[0] === 'console' ? 'console' : 'otlp' };
}

/**
 * Starts the SDK for `service` when tracing is on, before the process
 * serves anything; undefined when it is off, and then the SDK is not even
 * loaded. Shut the result down last (src/shutdown.ts's order): it sends the
 * spans still buffered.
 */
export async function startTracingFor(config: Config, service: string, env: NodeJS.ProcessEnv = process.env): Promise<Tracing | undefined> {
  const decision = tracingDecision(config.otel, env);
  if (!decision.enabled) return undefined;
  const sdk = await import('./tracing.js');
  const exporter =
    decision.exporter === 'console'
      ? new (await import('@opentelemetry/sdk-trace-node')).ConsoleSpanExporter()
      : new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter();
  // Batches are sent off the request path; OTEL_BSP_* tune them.
  return sdk.startSdk({ serviceName: `warren-${service}`, spanProcessor: new sdk.BatchSpanProcessor(exporter) });
}
