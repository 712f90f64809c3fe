import {
  context,
  createTraceState,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace-node';
import { formatTraceparent, incomingTrace, type TraceHeaders } from './traceContext';

/**
 * Warren's spans, over the OpenTelemetry SDK. Only this module knows the
 * SDK: the API, the relay and the consumer see `Tracing` and `TracedSpan`,
 * and a process with tracing off never loads this file
 * (src/observability/tracingStart.ts imports it only when tracing is on),
 * so it pays nothing for it.
 *
 * One trace runs from the HTTP request to the worker's handler:
 *
 *   POST /tweets (server) > outbox write > publish tweets (producer, from the
 *   context stored with the outbox row) > process analytics.tweets
 *   (consumer, from the message's headers) > analytics handler
 *
 * The publish span's parent is read from the row, not from memory, so the
 * trace continues when another relay, or this one after a restart, sends it.
 */
export interface TracedSpan {
  /** The trace it belongs to, as the logs name it. */
  readonly traceId: string;
  /** The W3C headers that make this span the parent of what comes next. */
  headers(): TraceHeaders;
  /** Runs `work` with this span current, so spans started inside are its children. */
  run<T>(work: () => Promise<T>): Promise<T>;
  set(key: string, value: string | number | boolean): void;
  /** Ends it; an error marks it failed. Once: later calls do nothing. */
  end(error?: unknown): void;
}

/** What a relay publish is about: an outbox row's route, ids and stored trace context. */
export interface PublishTarget {
  exchange: string;
  routingKey: string;
  messageId: string;
  type: string;
  traceparent: string;
  tracestate: string | null;
}

/** What a consumer span is about: the delivery's queue, ids and headers. */
export interface ConsumeTarget {
  queue: string;
  messageId?: string;
  type?: string;
  redelivered: boolean;
  headers: Record<string, unknown>;
}

const TRACER_NAME = 'warren';

const RABBITMQ = { 'messaging.system': 'rabbitmq' } as const;

class SdkSpan implements TracedSpan {
  private ended = false;

  constructor(
    readonly span: Span,
    private readonly parent: Context,
  ) {}

  get traceId(): string {
    return this.span.spanContext().traceId;
  }

  headers(): TraceHeaders {
    const sc = this.span.spanContext();
    const state = sc.traceState?.serialize();
    return {
      traceparent: formatTraceparent(sc.traceId, sc.spanId, (sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED),
      ...(state ? { tracestate: state } : {}),
    };
  }

  run<T>(work: () => Promise<T>): Promise<T> {
    return context.with(trace.setSpan(this.parent, this.span), work);
  }

  set(key: string, value: string | number | boolean): void {
    this.span.setAttribute(key, value);
  }

  end(error?: unknown): void {
    if (this.ended) return;
    this.ended = true;
    if (error !== undefined) {
      const err = error instanceof Error ? error : new Error(String(error));
      this.span.recordException(err);
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
    }
    this.span.end();
  }
}

/** The context whose remote parent these headers name, or `base` when they name none (invalid ones are ignored). */
export function parentContext(traceparent: unknown, tracestate: unknown, base: Context = ROOT_CONTEXT): Context {
  const incoming = incomingTrace(traceparent, tracestate);
  if (!incoming) return base;
  const { parent, headers } = incoming;
  return trace.setSpanContext(base, {
    traceId: parent.traceId,
    spanId: parent.spanId,
    traceFlags: parent.flags & TraceFlags.SAMPLED,
    isRemote: true,
    ...(headers.tracestate ? { traceState: createTraceState(headers.tracestate) } : {}),
  });
}

export class Tracing {
  constructor(
    private readonly tracer: Tracer,
    private readonly provider?: NodeTracerProvider,
  ) {}

  private start(name: string, kind: SpanKind, parent: Context, attributes: Attributes, links?: Link[]): SdkSpan {
    return new SdkSpan(this.tracer.startSpan(name, { kind, attributes, ...(links ? { links } : {}) }, parent), parent);
  }

  /** The server span of one HTTP request, child of the caller's `traceparent` when it sent a valid one. */
  httpServer(request: { method: string; path: string; scheme: string; traceparent: unknown; tracestate: unknown }): TracedSpan {
    return this.start(request.method, SpanKind.SERVER, parentContext(request.traceparent, request.tracestate), {
      'http.request.method': request.method,
      'url.path': request.path,
      'url.scheme': request.scheme,
    });
  }

  /** Names a server span after its route once routing has found it (`POST /tweets`), and records the answer. */
  httpAnswered(span: TracedSpan, method: string, route: string | undefined, status: number): void {
    if (!(span instanceof SdkSpan)) return;
    if (route) {
      span.span.updateName(`${method} ${route}`);
      span.set('http.route', route);
    }
    span.set('http.response.status_code', status);
    // Only the server's own failures fail a server span; a 4xx is the client's.
    if (status >= 500) span.span.setStatus({ code: SpanStatusCode.ERROR });
  }

  /** The write of a request's change and its outbox events, under the current span (the request's). */
  outboxWrite(): TracedSpan {
    return this.start('outbox write', SpanKind.INTERNAL, context.active(), {});
  }

  /** The relay's publish of one outbox row: a producer span under the context the row was written with. */
  publish(row: PublishTarget): TracedSpan {
    return this.start(`publish ${row.exchange}`, SpanKind.PRODUCER, parentContext(row.traceparent, row.tracestate), {
      ...RABBITMQ,
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'publish',
      'messaging.destination.name': row.exchange,
      'messaging.rabbitmq.destination.routing_key': row.routingKey,
      'messaging.message.id': row.messageId,
      'warren.message.type': row.type,
    });
  }

  /** A consumer's processing of one delivery, child of the producer span its headers name. */
  consume(delivery: ConsumeTarget): TracedSpan {
    return this.start(
      `process ${delivery.queue}`,
      SpanKind.CONSUMER,
      parentContext(headerText(delivery.headers.traceparent), headerText(delivery.headers.tracestate)),
      {
        ...RABBITMQ,
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.destination.name': delivery.queue,
        'messaging.rabbitmq.message.redelivered': delivery.redelivered,
        ...(delivery.messageId ? { 'messaging.message.id': delivery.messageId } : {}),
        ...(delivery.type ? { 'warren.message.type': delivery.type } : {}),
      },
    );
  }

  /**
   * A worker's handler run over the messages of these consumer spans: the
   * child of the first, linked to the others (a batch applied in one
   * transaction is one run).
   */
  handler(worker: string, of: readonly TracedSpan[], messages: number): TracedSpan {
    const spans = of.filter((s): s is SdkSpan => s instanceof SdkSpan);
    const first = spans[0];
    const parent = first ? trace.setSpan(context.active(), first.span) : context.active();
    const links = spans.slice(1).map((s) => ({ context: s.span.spanContext() }));
    return this.start(`${worker} handler`, SpanKind.INTERNAL, parent, { 'warren.worker': worker, 'messaging.batch.message_count': messages }, links);
  }

  /** Sends what is buffered and stops the exporter: the last step of a process's shutdown. */
  async shutdown(): Promise<void> {
    await this.provider?.shutdown();
  }

  /** Sends what is buffered, without stopping (tests). */
  async flush(): Promise<void> {
    await this.provider?.forceFlush();
  }
}

function headerText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return undefined;
}

export interface SdkOptions {
  /** `service.name` unless OTEL_SERVICE_NAME (or OTEL_RESOURCE_ATTRIBUTES) says otherwise. */
  serviceName: string;
  /** Where the spans go: the OTLP exporter in a batch processor in production, an in-memory one in tests. */
  spanProcessor: SpanProcessor;
}

/**
 * Registers the SDK for this process: the tracer provider (its sampler from
 * OTEL_TRACES_SAMPLER, parent-based always-on by default), an
 * AsyncLocalStorage context manager so that the current span follows a
 * request through its awaits, and the resource (service name, then the
 * OTEL_* resource variables over it).
 */
export function startSdk(opts: SdkOptions): Tracing {
  const resource = defaultResource()
    .merge(resourceFromAttributes({ 'service.name': opts.serviceName }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [opts.spanProcessor] });
  // Warren reads and writes the headers itself (traceContext.ts); no global propagator is needed.
  provider.register({ propagator: null });
  return new Tracing(provider.getTracer(TRACER_NAME), provider);
}

export { BatchSpanProcessor };
