/** @file
 * The console's overview on the real broker and a real API: every queue's
 * figures from the management API (a work queue with its worker's consumer,
 * one without), the outbox backlog and relay figures from the API's
 * /metrics, parked messages per DLQ (broker and index) and per reason,
 * the last hour's samples, the page, and what it says when a source fails.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { connectBroker, type BrokerConnection } from '../../src/broker/connection';
import { createConsoleApp } from '../../src/console/app';
import { ParkIndexer } from '../../src/console/indexer';
import { createOperatorToken } from '../../src/console/operatorTokens';
import { overviewResponse } from '../../src/console/responses';
import { PARKED_TABLE } from '../../src/db/migrations/console';
import { openDatabase } from '../../src/db/knex';
import { createLogger } from '../../src/log';
import { rawPublish } from '../support/amqp';
import { TestSystem, waitFor } from '../support/system';

const QUEUE = 'analytics.tweets';
const log = createLogger('test', 'silent');

describe('console: overview (integration)', function () {
  this.timeout(120_000);
  const sys = new TestSystem();
  let db: Knex;
  let connection: BrokerConnection;
  let indexer: ParkIndexer;
  let server: http.Server;
  let base = '';
  let viewer = '';

  async function overview() {
    const res = await fetch(`${base}/api/v1/overview`, { headers: { authorization: `Bearer ${viewer}` } });
    expect(res.status).to.equal(200);
    return overviewResponse.parse(await res.json());
  }

  before(async function () {
    await sys.setUp();
    db = openDatabase(sys.config, 'console');
    connection = connectBroker({ url: sys.amqpUrl, service: 'console', role: 'consume', heartbeatSeconds: 10, reconnectSeconds: 1, log });
    indexer = new ParkIndexer({ connection, db, log });
    viewer = (await createOperatorToken(db, 'viewer', 'vera', Date.now())).token;
    const app = createConsoleApp({ db, config: sys.config, log, amqpUrl: sys.amqpUrl });
    const handle = app.callback();
    server = http.createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async function () {
    await new Promise((resolve) => server?.close(resolve));
    await indexer?.stop();
    await connection?.close();
    await db?.destroy();
    await sys.tearDown();
  });

  it('says which source failed and shows the rest: no API running yet', async function () {
    const o = await overview();
    expect(o.outbox).to.have.property('error');
    expect(o.broker).to.have.property('queues');
  });

  it("shows every queue's figures, the outbox and relay, parked messages per DLQ and per reason, and the last hour", async function () {
    await sys.startApi();
    await sys.startWorker('analytics');
    for (const n of [1, 2, 3])
      await rawPublish(sys.amqpUrl, 'warren.dlx', QUEUE, `not json ${n}`, {
        messageId: crypto.randomUUID(),
        type: 'tweet.created',
        headers: {
          'x-warren-error': `PermanentError: bad payload ${n}`,
          'x-warren-error-kind': 'permanent',
          'x-warren-last-failure': new Date().toISOString(),
        },
      });
    await waitFor('3 parks indexed', async () => Number(((await db(PARKED_TABLE).count({ n: '*' })) as { n: number }[])[0]!.n) === 3);
    // The broker reports a queue's figures every 5 s.
    let o = await overview();
    await waitFor('the broker reports the DLQ and the consumer', async () => {
      o = await overview();
      const q = 'queues' in o.broker ? o.broker.queues.find((x) => x.name === QUEUE) : undefined;
      return o.parked.byDlq.find((d) => d.queue === QUEUE)?.inDlq === 3 && q?.consumers === 1;
    }).catch((err: Error) => {
      throw new Error(
        `${err.message}: ${JSON.stringify({ dlqs: o.parked.byDlq, q: 'queues' in o.broker ? o.broker.queues.filter((x) => x.name.startsWith(QUEUE)) : o.broker })}`,
      );
    });
    if (!('queues' in o.broker)) throw new Error(o.broker.error);
    const work = o.broker.queues.find((q) => q.name === QUEUE)!;
    expect(work).to.include({ role: 'work', consumers: 1 });
    expect(work.publishRate).to.be.a('number');
    const idle = o.broker.queues.find((q) => q.role === 'work' && q.name !== QUEUE)!;
    expect(idle.consumers).to.equal(0);
    expect(o.broker.queues.find((q) => q.name === `${QUEUE}.dlq`)).to.include({ role: 'dlq', ready: 3 });
    expect(o.parked.byDlq.find((d) => d.queue === QUEUE)).to.deep.equal({ queue: QUEUE, dlq: `${QUEUE}.dlq`, inDlq: 3, indexed: 3 });
    expect(o.parked.byReason).to.deep.include({ queue: QUEUE, kind: 'permanent', reason: 'PermanentError: bad payload <n>', count: 3 });
    if ('error' in o.outbox) throw new Error(o.outbox.error);
    expect(o.outbox.backlog).to.be.a('number');
    expect(o.outbox.relayUp).to.equal(true);
    expect(o.outbox.source).to.equal(`http://127.0.0.1:${sys.config.http.port}/metrics`);
    // A write through the API is relayed: the relay's lag is then known.
    const user = await fetch(`${sys.baseUrl}/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ handle: `ov${Date.now() % 1e6}`, displayName: 'Overview' }),
    });
    expect(user.status).to.equal(201);
    await waitFor('the relay reports a relayed row', async () => {
      const now = await overview();
      return !('error' in now.outbox) && (now.outbox.relayedTotal ?? 0) > 0 && now.outbox.relayLagMeanSeconds !== null;
    });
    expect(o.history).to.have.property('points');

    const cookie = await signIn();
    const page = await fetch(`${base}/overview`, { headers: { cookie } });
    const text = await page.text();
    expect(page.status).to.equal(200);
    expect(text)
      .to.include('<meta http-equiv="refresh"')
      .and.include('id="queues"')
      .and.include(`${QUEUE}.dlq`)
      .and.include('PermanentError: bad payload &lt;n&gt;');
    expect(text).to.match(/Outbox backlog <strong>\d+<\/strong>/);
  });

  async function signIn(): Promise<string> {
    const res = await fetch(`${base}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: viewer }).toString(),
    });
    return res.headers.get('set-cookie')!.split(';')[0]!;
  }
});
