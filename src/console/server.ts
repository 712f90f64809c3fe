/** @file
 * `warren console`: the console's HTTP server (console.host, 127.0.0.1
 * unless configured, and console.port) and its indexer, in one process. The
 * indexer starts once the broker's topology has what it reads (the index
 * queue, the park exchange); the pages and the API serve the index from
 * the start.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { serviceAmqpUrl, vhostOf, type Config } from '../config';
import { connectBroker } from '../broker/connection';
import { answerUnparsableRequest } from '../api/middleware/errors';
import { asyncCommitRefusal, openDatabase } from '../db/knex';
import { createLogger } from '../log';
import { exitWithLine, onShutdown } from '../shutdown';
import { loadDefinitions, PARK_EXCHANGE, retargetDefinitions } from '../topology/definitions';
import { awaitTopology } from '../topology/gate';
import { actionsFinished } from './actions';
import { createConsoleApp } from './app';
import { ParkIndexer } from './indexer';
import { PARKED_INDEX_QUEUE } from './parkRecord';

export async function runConsole(config: Config): Promise<http.Server> {
  const log = createLogger('console', config.log.level);
  const vhost = vhostOf(config.amqp.url);
  const defs = retargetDefinitions(loadDefinitions(config.amqp.definitionsFile), vhost);
  const db = openDatabase(config, 'console');
  const asyncCommit = await asyncCommitRefusal(config, 'console');
  if (asyncCommit) exitWithLine(`warren console: ${asyncCommit}`);
  const connection = connectBroker({
    url: serviceAmqpUrl(config, 'console'),
    service: 'console',
    role: 'consume',
    heartbeatSeconds: config.amqp.heartbeatSeconds,
    reconnectSeconds: config.amqp.reconnectSeconds,
    log,
  });
  const stopped = { stopped: false };
  let indexer: ParkIndexer | undefined;
  const indexerStatus = () =>
    indexer?.status() ?? { consuming: false, detail: `not consuming ${PARKED_INDEX_QUEUE}: broker topology not verified yet`, indexed: 0, duplicates: 0 };
  awaitTopology({ managementUrl: config.amqp.managementUrl, vhost, defs, queues: [PARKED_INDEX_QUEUE], exchanges: [PARK_EXCHANGE], log }, 1000, stopped).then(
    () => {
      if (!stopped.stopped) indexer = new ParkIndexer({ connection, db, log });
    },
    (err) => exitWithLine(`warren console: ${(err as Error).message}`),
  );

  const app = createConsoleApp({ db, config, log, indexer: { status: indexerStatus }, amqpUrl: serviceAmqpUrl(config, 'console') });
  const handle = app.callback();
  const server = http.createServer((req, res) => void handle(req, res));
  server.on('clientError', answerUnparsableRequest);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.console.port, config.console.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  log.info({ host: config.console.host, port }, 'console listening');

  onShutdown(log, 20_000, async () => {
    stopped.stopped = true;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 5000).unref();
    });
    // A replay or discard running in the background ends (marked and audited) before the database closes.
    await actionsFinished();
    // The batch in hand commits and is acked; the rest goes back to the index queue.
    await indexer?.stop();
    await connection.close();
    await db.destroy();
  });
  return server;
}
