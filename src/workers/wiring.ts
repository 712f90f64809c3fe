import type { Knex } from 'knex';
import type { Registry } from 'prom-client';
import type { BrokerConnection } from '../broker/connection';
import { ConfirmPublisher } from '../broker/publisher';
import type { Config } from '../config';
import { ConfigError } from '../config';
import { QueueConsumer } from '../consume/consumer';
import type { WorkerDefinition } from '../consume/handler';
import type { MessageType } from '../domain/messages';
import type { Logger } from '../log';
import type { Tracing } from '../observability/tracing';
import { ConsumerMetrics } from '../consume/metrics';
import { PublishMetrics } from '../observability/metrics';
import { delaySteps, workQueues, type Definitions } from '../topology/definitions';
import type { WorkerDeclaration } from './declaration';

/**
 * The attempts for this worker's queue. Every `retry.attempts` key must name
 * a work queue of the definitions file: a misspelt one would otherwise leave
 * the real queue on its default without a word.
 */
export function retryAttemptsFor(config: Config, queue: string, defs: Definitions): number {
  const work = workQueues(defs);
  for (const key of Object.keys(config.retry.attempts)) {
    if (!work.includes(key)) throw new ConfigError(`retry.attempts.${key}`, `${key} is not a work queue of the definitions file (${work.join(', ')})`);
  }
  const attempts = config.retry.attempts[queue];
  if (attempts === undefined)
    throw new ConfigError(`retry.attempts.${queue}`, 'required: how many times a failing message of this queue is tried before it is parked');
  return attempts;
}

/** What a process has to run a worker in: the caller opens these and closes them after the worker. */
export interface WorkerProcessResources {
  /** The configuration: worker.prefetch, handlerTimeoutMs and batchDeadlineMs, relay.publishTimeoutMs, retry.attempts. */
  config: Config;
  /** The definitions file, retargeted to the vhost: its delay steps and work queues. */
  defs: Definitions;
  /** The consume-only connection. */
  consumeConnection: BrokerConnection;
  /** The publishing connection: retries, parks and the declaration's collaborators. */
  publishConnection: BrokerConnection;
  /** The worker's own database. */
  db: Knex;
  log: Logger;
  /** Where the consumer's and publisher's metrics go; none without it. */
  metrics?: Registry;
  /** The consumer's clock; the system clock without it. */
  now?: () => Date;
  /** Consumer and handler spans; none without it (tracing off). */
  tracing?: Tracing;
}

/** A worker wired to its process: stop `consumer` first, then `close`. */
export interface WiredWorker {
  consumer: QueueConsumer;
  /** The confirm publisher of the consumer's retries and parks. */
  publisher: ConfirmPublisher;
  /** Closes the publisher, then the declaration's collaborators; the connections and the database stay open. */
  close(): Promise<void>;
}

/**
 * The one way a worker declaration becomes a running consumer, as
 * `warren worker <name>` runs it: a confirm publisher on the publishing
 * connection for retries and parks, the declaration's collaborators, and a
 * QueueConsumer with the configured prefetch, handler timeout and batch
 * deadline, the queue's retry attempts (retryAttemptsFor, which throws a
 * ConfigError) and the definitions' delay steps. With `metrics`, the
 * handler is timed and the settlements and publishes are counted.
 */
export function wireWorker<T extends MessageType>(declaration: WorkerDeclaration<T>, resources: WorkerProcessResources): WiredWorker {
  const { config, defs, consumeConnection, publishConnection, db, log, metrics, now, tracing } = resources;
  const maxAttempts = retryAttemptsFor(config, declaration.queue, defs);
  const steps = delaySteps(defs);
  const consumerMetrics = metrics && new ConsumerMetrics(metrics);
  const publisher = new ConfirmPublisher(publishConnection, log, config.relay.publishTimeoutMs, metrics && new PublishMetrics(metrics).settled);
  // What the handler needs beyond its transaction (a publisher of its own, say), built by the declaration.
  const wired = declaration.withCollaborators?.({ publishConnection, config, log });
  const worker: WorkerDefinition<T> = wired?.worker ?? declaration;
  const consumer = new QueueConsumer({
    connection: consumeConnection,
    publisher,
    db,
    worker: (consumerMetrics ? consumerMetrics.timed(worker) : worker) as unknown as WorkerDefinition,
    prefetch: config.worker.prefetch,
    handlerTimeoutMs: config.worker.handlerTimeoutMs,
    batchDeadlineMs: config.worker.batchDeadlineMs,
    maxAttempts,
    steps,
    log,
    now,
    tracing,
  });
  consumerMetrics?.watch(declaration.queue, consumer);
  return {
    consumer,
    publisher,
    async close() {
      await publisher.close();
      await wired?.close();
    },
  };
}
