import type { Config } from '../config';
import { serviceAmqpUrl, vhostOf, WORKER_STOP_MARGIN_MS } from '../config';
import { connectBroker } from '../broker/connection';
import { loadDefinitions, queuesNeededBy, retargetDefinitions } from '../topology/definitions';
import { awaitTopology } from '../topology/gate';
import { pruneInbox } from '../db/inbox';
import { asyncCommitRefusal, openDatabase } from '../db/knex';
import { createLogger } from '../log';
import { createRegistry } from '../observability/metrics';
import { exitWithLine, onShutdown } from '../shutdown';
import type { Tracing } from '../observability/tracing';
import type { WorkerDeclaration } from './declaration';
import { serveWorkerHealth } from './health';
import { workers, type WorkerName } from './registry';
import { retryAttemptsFor, wireWorker } from './wiring';

const PRUNE_EVERY_MS = 60 * 60 * 1000;

/**
 * `warren worker <name>`: one consumer process of the worker the registry
 * declares under that name. Competing consumers scale by process count;
 * prefetch gives fair dispatch between them. `config` is loaded for this
 * worker (loadConfig's `worker`), so its declared defaults are in it.
 */
export async function runWorker(config: Config, name: WorkerName, tracing?: Tracing): Promise<void> {
  const worker: WorkerDeclaration = workers[name];
  const log = createLogger(`worker-${name}`, config.log.level);
  const vhost = vhostOf(config.amqp.url);
  const defs = retargetDefinitions(loadDefinitions(config.amqp.definitionsFile), vhost);
  // Checked before waiting for the topology (wireWorker takes the same attempts): a misconfigured worker stops with one line at once.
  try {
    retryAttemptsFor(config, worker.queue, defs);
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
  const { consumer, close } = wireWorker(worker, { config, defs, consumeConnection, publishConnection, db, log, metrics: registry, tracing });

  // A worker that is a service of its own (the timeline) serves its routes and its probes on its own port.
  const listen = worker.http?.listen(config) ?? { host: config.http.host, port: config.worker.healthPort };
  const health = await serveWorkerHealth({
    ...listen,
    status: () => consumer.status(),
    metrics: registry,
    routes: worker.http?.routes({ db, config, log }),
    log,
  });
  // Its callers expect it there: a service that cannot take its port stops, rather than consume unseen.
  if (worker.http && listen.port > 0 && !health) exitWithLine(`warren worker ${name}: cannot listen on ${listen.host}:${listen.port}`);
  let more: { close(): Promise<void> } | undefined;
  try {
    more = await worker.http?.serveMore?.({ db, config, log });
  } catch (err) {
    exitWithLine(`warren worker ${name}: ${(err as Error).message}`);
  }

  const prune = setInterval(() => {
    pruneInbox(db, config.inbox.retentionDays).catch((err) => log.warn({ err: err as Error }, 'inbox prune failed'));
  }, PRUNE_EVERY_MS);
  prune.unref();

  log.info({ queue: worker.queue, prefetch: config.worker.prefetch }, 'worker started');
  onShutdown(log, config.worker.handlerTimeoutMs + WORKER_STOP_MARGIN_MS, async () => {
    clearInterval(prune);
    await consumer.stop(config.worker.handlerTimeoutMs);
    log.info({ counts: consumer.counts }, 'worker stopped');
    await health?.close();
    await more?.close();
    await close();
    await Promise.all([consumeConnection.close(), publishConnection.close()]);
    await db.destroy();
    // Last: the spans of the deliveries settled above are sent before the exit.
    await tracing?.shutdown().catch((err: Error) => log.warn({ err }, 'sending the last spans failed'));
  });
}
