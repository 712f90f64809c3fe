/**
 * @file The consumer's Prometheus metrics: deliveries by queue and outcome,
 * whether each consumer consumes, and the handler's duration. Read from the
 * consumers' own counts when scraped (src/observability/metrics.ts says why).
 */
import type { Knex } from 'knex';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { MessageType, WarrenMessage } from '../domain/messages';
import { deliveryLogger } from '../log';
import { LATENCY_BUCKETS, secondsSince } from '../observability/metrics';
import type { HandlerContext, WorkerDefinition } from './handler';

/** What the metrics read of a queue consumer (src/consume/consumer.ts). */
export interface ConsumerSource {
  readonly counts: Readonly<Record<string, number>>;
  status(): { consuming: boolean; ready: boolean };
}

/** The consumer's outcomes, exactly as it counts them. */
export const CONSUMED_OUTCOMES = ['applied', 'duplicate', 'ignored', 'retried', 'parked', 'stale'] as const;

/** Deliveries by queue and outcome, redeliveries, and whether each consumer consumes; read from the consumers when scraped. */
export class ConsumerMetrics {
  private readonly consumers: { queue: string; consumer: ConsumerSource }[] = [];
  readonly handlerDuration: Histogram<'queue' | 'result'>;

  constructor(registry: Registry) {
    const consumers = this.consumers;
    new Counter({
      name: 'warren_messages_consumed_total',
      help: 'Deliveries settled by a worker, by queue and outcome (applied, duplicate, ignored, retried, parked; stale: the ack could not be sent, also counted under its outcome)',
      labelNames: ['queue', 'outcome'],
      registers: [registry],
      collect() {
        this.reset();
        for (const { queue, consumer } of consumers) {
          for (const outcome of CONSUMED_OUTCOMES) this.inc({ queue, outcome }, consumer.counts[outcome] ?? 0);
        }
      },
    });
    new Counter({
      name: 'warren_messages_redelivered_total',
      help: 'Deliveries the broker marked redelivered (a crash or a closed channel returned them), by queue',
      labelNames: ['queue'],
      registers: [registry],
      collect() {
        this.reset();
        for (const { queue, consumer } of consumers) this.inc({ queue }, consumer.counts.redelivered ?? 0);
      },
    });
    new Gauge({
      name: 'warren_consumer_consuming',
      help: '1 while this process is subscribed to the queue, else 0',
      labelNames: ['queue'],
      registers: [registry],
      collect() {
        for (const { queue, consumer } of consumers) this.set({ queue }, consumer.status().consuming ? 1 : 0);
      },
    });
    new Gauge({
      name: 'warren_consumer_ready',
      help: '1 while this process consumes the queue and can retry and park (its /readyz), else 0',
      labelNames: ['queue'],
      registers: [registry],
      collect() {
        for (const { queue, consumer } of consumers) this.set({ queue }, consumer.status().ready ? 1 : 0);
      },
    });
    this.handlerDuration = new Histogram({
      name: 'warren_handler_duration_seconds',
      help: 'Time a worker handler ran for one message, or for one batch of messages applied together, by queue and result (ok, or error: retried or parked)',
      labelNames: ['queue', 'result'],
      buckets: [...LATENCY_BUCKETS, 30],
      registers: [registry],
    });
  }

  watch(queue: string, consumer: ConsumerSource): void {
    this.consumers.push({ queue, consumer });
  }

  /**
   * The worker with its handler timed. A wrapper rather than a hook in the
   * consumer: the handler's contract is the one interface every consumer
   * keeps. Its debug line is written with the delivery's logger, so it
   * carries the request id of the HTTP request that caused the message.
   */
  timed<T extends MessageType>(worker: WorkerDefinition<T>): WorkerDefinition<T> {
    const duration = this.handlerDuration;
    /** Runs one handler call (a message, or a batch), observes its duration, and logs each message it finished. */
    const time = async (messages: readonly WarrenMessage<T>[], ctx: HandlerContext, batched: boolean, call: () => Promise<void>) => {
      const started = process.hrtime.bigint();
      let result: 'ok' | 'error' = 'error';
      try {
        await call();
        result = 'ok';
      } finally {
        const seconds = secondsSince(started);
        duration.observe({ queue: worker.queue, result }, seconds);
        if (result === 'ok' && ctx.log.isLevelEnabled('debug')) {
          const ms = Math.round(seconds * 10_000) / 10;
          const batch = batched ? { batch: messages.length } : {};
          // One line per message, under its own request id, so one grep follows it
          // (a lone message's ctx.log carries it already; a batch's cannot).
          for (const m of messages)
            (batched ? deliveryLogger(ctx.log, m) : ctx.log).debug(
              { messageId: m.messageId, type: m.type, queue: worker.queue, ...batch, ms },
              'handler finished',
            );
        }
      }
    };
    const { handleBatch } = worker;
    return {
      ...worker,
      handle: (message, tx, ctx) => time([message], ctx, false, () => worker.handle(message, tx, ctx)),
      ...(handleBatch && {
        handleBatch: (messages: WarrenMessage<T>[], tx: Knex.Transaction, ctx: HandlerContext) =>
          time(messages, ctx, true, () => handleBatch(messages, tx, ctx)),
      }),
    };
  }
}
