import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConsumerStatus } from '../consume/consumer';
import type { Logger } from '../log';
import type { WorkerRoutes } from './declaration';

export interface WorkerHealthOptions {
  host: string;
  /** 0 = no endpoint. */
  port: number;
  status(): ConsumerStatus;
  /** This process's metrics (a prom-client Registry), served at GET /metrics. */
  metrics?: { contentType: string; metrics(): Promise<string> };
  /** The worker's own routes (the timeline service's), answered after the probes. */
  routes?: WorkerRoutes;
  log: Logger;
}

export interface WorkerHealthServer {
  port: number;
  close(): Promise<void>;
}

/**
 * A worker's probes (`worker.healthPort`): GET /healthz answers while the
 * process runs; GET /readyz answers 503 with the consumer's reason when it
 * is not consuming its queue or cannot retry or park; GET /metrics is the
 * process's Prometheus metrics. Plain node:http: a
 * worker has no other HTTP to serve.
 */
export async function serveWorkerHealth(opts: WorkerHealthOptions): Promise<WorkerHealthServer | undefined> {
  if (opts.port === 0) return undefined;
  const server = http.createServer((req, res) => {
    const [path = '/', search = ''] = (req.url ?? '/').split('?', 2);
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : JSON.stringify(body));
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, { error: { code: 'method_not_allowed', message: 'GET only' } });
    if (path === '/healthz') return reply(200, { status: 'ok' });
    if (path === '/readyz') {
      const s = opts.status();
      return reply(s.ready ? 200 : 503, { status: s.ready ? 'ok' : 'unavailable', consuming: s.consuming, detail: s.detail });
    }
    if (path === '/metrics' && opts.metrics) {
      const registry = opts.metrics;
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
          res.end(req.method === 'HEAD' ? undefined : text);
        },
        (err: Error) => reply(500, { error: { code: 'metrics_failed', message: err.message } }),
      );
      return;
    }
    const answer = opts.routes?.(req.method ?? 'GET', path, new URLSearchParams(search));
    if (answer) {
      answer.then(
        ({ status, body }) => reply(status, body),
        (err: Error) => {
          opts.log.error({ err, path }, 'worker route failed');
          reply(500, { error: { code: 'internal', message: 'internal error' } });
        },
      );
      return;
    }
    return reply(404, { error: { code: 'not_found', message: `no route ${path}` } });
  });
  server.keepAliveTimeout = 1000;
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', (err) => {
      // Several processes on one host (--processes N) share one configured port: the first one serves it.
      opts.log.warn({ port: opts.port, err }, 'worker health endpoint not started');
      resolve(false);
    });
    server.listen(opts.port, opts.host, () => resolve(true));
  });
  if (!listening) return undefined;
  const port = (server.address() as AddressInfo).port;
  opts.log.info({ host: opts.host, port }, 'worker health endpoint listening');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
