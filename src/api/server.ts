import http from 'node:http';
import type { Config } from '../config';
import { serviceAmqpUrl, vhostOf } from '../config';
import { connectBroker } from '../broker/connection';
import { LiveNotificationSubscriber } from '../broker/live';
import { ConfirmPublisher } from '../broker/publisher';
import { probeQueues, type QueueProbe } from '../broker/queueProbe';
import { OutboxRelay } from '../outbox/relay';
import { apiNeeds, loadDefinitions, retargetDefinitions, workQueues } from '../topology/definitions';
import { awaitTopology } from '../topology/gate';
import { GroupCommit } from '../db/groupCommit';
import { asyncCommitRefusal, openDatabase } from '../db/knex';
import { createLogger } from '../log';
import { createRegistry, HttpMetrics, PublishMetrics, QueueMetrics, RelayMetrics } from '../observability/metrics';
import { exitWithLine, onShutdown } from '../shutdown';
import type { Tracing } from '../observability/tracing';
import { createApp, type ReadinessCheck } from './app';
import { answerUnparsableRequest } from './middleware/errors';
import { refuseWithoutDatabaseFile } from './unitOfWork';
import { NotificationHub } from './notificationHub';
import { TimelineClient } from './timelineClient';

const CONSUMER_CHECK_TTL_MS = 2000;

/**
 * Stops accepting connections and ends keep-alive ones as their current
 * response completes (a busy client would otherwise hold the server open
 * forever); after `graceMs`, whatever is left is cut.
 */
async function closeGracefully(server: http.Server, graceMs: number): Promise<void> {
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => res.setHeader('connection', 'close'));
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
  const cut = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearInterval(idleSweep);
  clearTimeout(cut);
}

/**
 * `warren api`: the HTTP API and the outbox relay. It starts without the
 * broker (writes go to the outbox and are relayed once it is back) and is
 * ready while it can take writes; the broker, the topology, the relay and
 * the consumers are reported by /readyz without deciding it.
 */
export async function runApi(config: Config, tracing?: Tracing): Promise<http.Server> {
  const log = createLogger('api', config.log.level);
  const vhost = vhostOf(config.amqp.url);
  const defs = retargetDefinitions(loadDefinitions(config.amqp.definitionsFile), vhost);
  // The writer first: with sqliteDriver auto, the readers open the file with the writer's SQLite library (src/db/knex.ts).
  const writeDb = openDatabase(config, 'api', { writer: true });
  const db = openDatabase(config, 'api', { attachReadModels: true, readers: 4 });
  const asyncCommit = await asyncCommitRefusal(config, 'api');
  if (asyncCommit) exitWithLine(`warren api: ${asyncCommit}`);
  const connection = connectBroker({
    url: serviceAmqpUrl(config, 'api'),
    service: 'api',
    role: 'publish',
    heartbeatSeconds: config.amqp.heartbeatSeconds,
    reconnectSeconds: config.amqp.reconnectSeconds,
    log,
  });
  const registry = createRegistry('api', { processMetrics: true });
  const relayMetrics = new RelayMetrics(registry);
  const publisher = new ConfirmPublisher(connection, log, config.relay.publishTimeoutMs, new PublishMetrics(registry).settled);
  // Live notifications for this process's open streams, on a connection of their own (never the publishing one).
  const liveConnection = connectBroker({
    url: serviceAmqpUrl(config, 'api'),
    service: 'api',
    role: 'consume',
    heartbeatSeconds: config.amqp.heartbeatSeconds,
    reconnectSeconds: config.amqp.reconnectSeconds,
    log,
  });
  const notificationHub = new NotificationHub();
  const live = new LiveNotificationSubscriber({
    connection: liveConnection,
    log,
    onNotified: (userId) => notificationHub.wake(userId),
    // Whatever was published while this process had no queue is only in the store.
    onSubscribed: () => notificationHub.wakeAll(),
  });
  const topology = { verified: false };
  const shutdownSignal = { stopped: false };
  // One group commit for the requests' writes and the relay's: they share its durable commits.
  // The relay's writes only touch the outbox, so they go beside the requests' inserts (rerunnable).
  const writes = new GroupCommit(writeDb, { refuseWhen: refuseWithoutDatabaseFile(writeDb) });
  const relay = new OutboxRelay({
    db: writeDb,
    writes: (work) => writes.run(work, { rerunnable: true }),
    publisher,
    log,
    batchSize: config.relay.batchSize,
    pollIntervalMs: config.relay.pollIntervalMs,
    claimTimeoutMs: config.relay.claimTimeoutMs,
    retainSentMs: config.outbox.retainSentHours * 3_600_000,
    observe: relayMetrics.published,
    mayPublish: () => topology.verified,
    tracing,
  });
  relayMetrics.watch(relay);
  relay.start();

  awaitTopology({ managementUrl: config.amqp.managementUrl, vhost, defs, ...apiNeeds(defs), log }, 1000, shutdownSignal).then(
    () => {
      topology.verified = true;
      relay.wake();
    },
    (err) => exitWithLine(`warren api: ${(err as Error).message}`),
  );

  let consumerCache: { at: number; checks: ReadinessCheck[]; probes: QueueProbe[] } | undefined;
  const consumerChecks = async (): Promise<ReadinessCheck[]> => {
    if (consumerCache && Date.now() - consumerCache.at < CONSUMER_CHECK_TTL_MS) return consumerCache.checks;
    // Never over the publishing connection: an alarm blocks it, and the probes with it.
    const probes = await probeQueues(liveConnection, workQueues(defs));
    const checks = probes.map((p): ReadinessCheck =>
      p.ok
        ? { name: `consumers:${p.queue}`, ok: p.consumers > 0, detail: `${p.consumers} consumer(s), ${p.messages} message(s) waiting` }
        : { name: `consumers:${p.queue}`, ok: false, detail: p.error },
    );
    consumerCache = { at: Date.now(), checks, probes };
    return checks;
  };
  // The work queues' depth and consumers on /metrics, from the same (cached) probe as readiness.
  new QueueMetrics(registry, async () => {
    await consumerChecks();
    return consumerCache?.probes ?? [];
  });

  // The timeline service's instances; a call that none answers in time is a 503, never a hang.
  const timeline = new TimelineClient({
    urls: config.timeline.protocol === 'grpc' ? config.timeline.grpcUrls : config.timeline.urls,
    // gRPC is loaded only when configured.
    ...(config.timeline.protocol === 'grpc' ? { transport: (await import('./timelineGrpcClient.js')).grpcTransport } : {}),
    deadlineMs: config.timeline.deadlineMs,
    log,
  });
  // Not awaited: until a host name resolves, undici resolves it per connection.
  timeline.startDiscovery(config.timeline.discoveryIntervalMs).catch((err: Error) => log.warn({ err }, 'timeline discovery failed'));
  const app = createApp({
    config,
    timeline,
    db,
    writeDb,
    writes,
    log,
    metrics: { registry, http: new HttpMetrics(registry) },
    liveNotifications: notificationHub,
    onEventsWritten: () => relay.wake(),
    outboxBacklog: () => relay.pending(),
    // Reported in /readyz, never deciding it: the outbox takes writes while any of these is missing.
    readiness: async () => {
      const broker: ReadinessCheck = publisher.isReady()
        ? { name: 'broker', ok: true }
        : { name: 'broker', ok: false, detail: connection.isBlocked() ? 'connection blocked by a broker alarm' : 'not connected' };
      const topologyCheck: ReadinessCheck = { name: 'topology', ok: topology.verified, detail: topology.verified ? 'verified' : 'not verified yet' };
      const relayStatus = relay.status();
      const relayCheck: ReadinessCheck = { name: 'relay', ok: relayStatus.ok, detail: relayStatus.detail };
      const liveCheck: ReadinessCheck = live.subscribed()
        ? { name: 'live-notifications', ok: true, detail: `${notificationHub.size()} open stream(s)` }
        : { name: 'live-notifications', ok: false, detail: live.failure() || 'not subscribed to notifications.live' };
      const consumers = await consumerChecks().catch((err: Error): ReadinessCheck[] => [{ name: 'consumers', ok: false, detail: err.message }]);
      const instances = timeline.status();
      const setAside = instances.filter((i) => i.setAside).map((i) => i.url);
      const timelineCheck: ReadinessCheck = {
        name: 'timeline',
        ok: setAside.length < instances.length,
        detail: `${instances.length} instance(s)${setAside.length > 0 ? `, set aside: ${setAside.join(', ')}` : ', none set aside'}`,
        instances,
      };
      return [broker, topologyCheck, relayCheck, liveCheck, ...consumers, timelineCheck];
    },
    draining: () => shutdownSignal.stopped,
    tracing,
  });

  const handle = app.callback();
  // Koa answers every request's own errors; nothing is left for the server to catch.
  const server = http.createServer((req, res) => void handle(req, res));
  server.on('clientError', answerUnparsableRequest);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.http.port, config.http.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.http.port;
  log.info({ host: config.http.host, port }, 'api listening');

  onShutdown(log, 30_000 + config.http.drainDelayMs, async () => {
    shutdownSignal.stopped = true;
    // /readyz answers 503 from now on; requests are still served until a load balancer has seen it.
    await new Promise((r) => setTimeout(r, config.http.drainDelayMs));
    // Open streams never finish by themselves: end them, so their connections close like any other.
    notificationHub.close();
    // Stop taking requests and let those in flight finish, then relay what is committed.
    await closeGracefully(server, 10_000);
    // Best effort like everything live: a broker that does not answer the close does not hold the shutdown.
    await Promise.race([live.close().then(() => liveConnection.close()), new Promise((r) => setTimeout(r, 2000).unref())]);
    await relay.stop();
    await publisher.close();
    await connection.close();
    await timeline.close();
    await Promise.all([db.destroy(), writeDb.destroy()]);
    // Last: the spans of everything above, the relay's last publishes included, are sent before the exit.
    await tracing?.shutdown().catch((err: Error) => log.warn({ err }, 'sending the last spans failed'));
  });
  return server;
}
