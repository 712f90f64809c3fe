import type { Config } from '../config';
import { ConfigError, serviceAmqpUrl, vhostOf, WORKER_STOP_MARGIN_MS } from '../config';
import { connectBroker } from '../broker/connection';
import { QueueConsumer } from '../consume/consumer';
import { ConfirmPublisher } from '../broker/publisher';
import { delaySteps, loadDefinitions, queuesNeededBy, retargetDefinitions, workQueues, type Definitions } from '../topology/definitions';
import { awaitTopology } from '../topology/gate';
import { pruneInbox } from '../db/inbox';
import { asyncCommitRefusal, openDatabase } from '../db/knex';
import { createLogger } from '../log';
import { ConsumerMetrics, createRegistry, PublishMetrics } from '../observability/metrics';
import { exitWithLine, onShutdown } from '../shutdown';
import type { WorkerDeclaration } from './declaration';
import { serveWorkerHealth } from './health';
import { workers, type WorkerName } from './registry';

const PRUNE_EVERY_MS = 60 * 60 * 1000;

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

/**
 * `warren worker <name>`: one consumer process of the worker the registry
 * declares under that name. Competing consumers scale by process count;
 * prefetch gives fair dispatch between them. `config` is loaded for this
 * worker (loadConfig's `worker`), so its declared defaults are in it.
 */
export async function runWorker(config: Config, name: WorkerName): Promise<void> {
  const worker: WorkerDeclaration = workers[name];
  const log = createLogger(`worker-${name}`, config.log.level);
  const vhost = vhostOf(config.amqp.url);
  const defs = retargetDefinitions(loadDefinitions(config.amqp.definitionsFile), vhost);
  const steps = delaySteps(defs);
  let maxAttempts: number;
  try {
    maxAttempts = retryAttemptsFor(config, worker.queue, defs);
  } catch (err) {
    exitWithLine(`warren worker ${name}: ${(err as Error).message}`);
  }

  // Stops with one line if the topology is wrong; waits while the broker is away.
  try {
    await awaitTopology({ managementUrl: config.amqp.managementUrl, vhost, defs, ...queuesNeededBy(worker.queue, defs), log });
  } catch (err) {
    exitWithLine(`warren worker ${name}: ${(err as Error).message}`);
  }

  const db = openDatabase(config, worker.database.service, { statementTimeoutMs: config.worker.handlerTimeoutMs });
  const asyncCommit = await asyncCommitRefusal(config, worker.database.service);
  if (asyncCommit) exitWithLine(`warren worker ${name}: ${asyncCommit}`);
  const common = {
    url: serviceAmqpUrl(config, worker.brokerUser),
    service: `worker ${name}`,
    heartbeatSeconds: config.amqp.heartbeatSeconds,
    reconnectSeconds: config.amqp.reconnectSeconds,
    log,
  };
  const consumeConnection = connectBroker({ ...common, role: 'consume' });
  const publishConnection = connectBroker({ ...common, role: 'publish' });
  const registry = createRegistry(`worker-${name}`, { processMetrics: true });
  const consumerMetrics = new ConsumerMetrics(registry);
  const publisher = new ConfirmPublisher(publishConnection, log, config.relay.publishTimeoutMs, new PublishMetrics(registry).settled);
  // What the handler needs beyond its transaction (a publisher of its own, say), built by the declaration.
  const wired = worker.withCollaborators?.({ publishConnection, log });
  const consumer = new QueueConsumer({
    connection: consumeConnection,
    publisher,
    db,
    worker: consumerMetrics.timed(wired?.worker ?? worker),
    prefetch: config.worker.prefetch,
    handlerTimeoutMs: config.worker.handlerTimeoutMs,
    batchDeadlineMs: config.worker.batchDeadlineMs,
    maxAttempts,
    steps,
    log,
  });

  consumerMetrics.watch(worker.queue, consumer);

  const health = await serveWorkerHealth({ host: config.http.host, port: config.worker.healthPort, status: () => consumer.status(), metrics: registry, log });

  const prune = setInterval(() => {
    pruneInbox(db, config.inbox.retentionDays).catch((err) => log.warn({ err: (err as Error).message }, 'inbox prune failed'));
  }, PRUNE_EVERY_MS);
  prune.unref();

  log.info({ queue: worker.queue, prefetch: config.worker.prefetch }, 'worker started');
  onShutdown(log, config.worker.handlerTimeoutMs + WORKER_STOP_MARGIN_MS, async () => {
    clearInterval(prune);
    await consumer.stop(config.worker.handlerTimeoutMs);
    log.info({ counts: consumer.counts }, 'worker stopped');
    await health?.close();
    await publisher.close();
    await wired?.close();
    await Promise.all([consumeConnection.close(), publishConnection.close()]);
    await db.destroy();
  });
}
