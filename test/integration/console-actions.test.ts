/** @file
 * The console's replay and discard on the real broker: a count first (dry
 * run), the cap per action, replay by filter to the queue each came from
 * with the replay's id and count on the copies, "failed again after
 * replay" from the real worker, discard with a reason, the late-replay
 * refusal, and the audit log of each.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import amqp from 'amqplib';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { connectBroker, type BrokerConnection } from '../../src/broker/connection';
import { createConsoleApp } from '../../src/console/app';
import { ParkIndexer } from '../../src/console/indexer';
import { createOperatorToken } from '../../src/console/operatorTokens';
import { PARKED_TABLE } from '../../src/db/migrations/console';
import { openDatabase } from '../../src/db/knex';
import { createLogger } from '../../src/log';
import { purgeParked } from '../../src/ops/dlq';
import { rawPublish } from '../support/amqp';
import { TestSystem, waitFor } from '../support/system';

const QUEUE = 'analytics.tweets';
const DLQ = `${QUEUE}.dlq`;
const log = createLogger('test', 'silent');

describe('console: replay and discard (integration)', function () {
  this.timeout(120_000);
  const sys = new TestSystem();
  let db: Knex;
  let connection: BrokerConnection;
  let indexer: ParkIndexer;
  let server: http.Server;
  let base = '';
  let viewer = '';
  let operator = '';

  /** Parks a message the way Warren's consumer does, failed `ageMs` ago. */
  async function park(text: string, error: string, ageMs = 0): Promise<string> {
    const messageId = crypto.randomUUID();
    const at = new Date(Date.now() - ageMs);
    await rawPublish(sys.amqpUrl, 'warren.dlx', QUEUE, `not json: ${text}`, {
      messageId,
      type: 'tweet.created',
      contentType: 'application/json',
      timestamp: Math.floor(at.getTime() / 1000),
      headers: {
        'x-schema-version': '1.0',
        'x-warren-error': error,
        'x-warren-error-kind': 'permanent',
        'x-warren-attempts': 1,
        'x-warren-first-failure': at.toISOString(),
        'x-warren-last-failure': at.toISOString(),
        'x-warren-original-queue': QUEUE,
        'x-warren-original-exchange': 'tweets',
        'x-warren-original-routing-key': 'tweet.created',
      },
    });
    return messageId;
  }

  async function call(method: string, path: string, token: string, body?: unknown) {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- responses of many shapes, asserted field by field
    return { status: res.status, json: (text ? JSON.parse(text) : undefined) as any };
  }

  const rowOf = async (messageId: string, status = 'parked') =>
    (await db(PARKED_TABLE).where({ message_id: messageId, status }).first()) as Record<string, unknown> | undefined;
  const indexed = (n: number) => waitFor(`${n} parks indexed`, async () => Number(((await db(PARKED_TABLE).count({ n: '*' })) as { n: number }[])[0]!.n) === n);

  before(async function () {
    await sys.setUp({ console: { maxPerAction: 4 } });
    db = openDatabase(sys.config, 'console');
    connection = connectBroker({ url: sys.amqpUrl, service: 'console', role: 'consume', heartbeatSeconds: 10, reconnectSeconds: 1, log });
    indexer = new ParkIndexer({ connection, db, log });
    viewer = (await createOperatorToken(db, 'viewer', 'vera', Date.now())).token;
    operator = (await createOperatorToken(db, 'operator', 'otto', Date.now())).token;
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

  const ids: Record<string, string> = {};

  it('counts what a replay would take first, and refuses more than the cap per action', async function () {
    ids.a = await park('alpha', 'PermanentError: bad payload A');
    ids.b = await park('beta', 'PermanentError: bad payload B');
    ids.c = await park('gamma', 'PermanentError: other trouble');
    await indexed(3);
    const dry = await call('POST', '/api/v1/parked/replay', operator, { filter: { reason: 'bad payload' }, dryRun: true });
    expect(dry.status).to.equal(200);
    expect(dry.json).to.include({ dryRun: true, selected: 2, taken: 0 });
    expect(dry.json.byQueue).to.deep.equal({ [QUEUE]: 2 });
    expect(await sys.queueDepth(DLQ)).to.equal(3);

    ids.d = await park('delta', 'PermanentError: bad payload D');
    ids.e = await park('epsilon', 'PermanentError: bad payload E');
    await indexed(5);
    const capped = await call('POST', '/api/v1/parked/replay', operator, { filter: { queue: QUEUE } });
    expect(capped.status).to.equal(409);
    expect(capped.json.error.code).to.equal('too_many_selected');
    expect(await sys.queueDepth(DLQ)).to.equal(5);
    expect((await call('POST', '/api/v1/parked/replay', viewer, { filter: { queue: QUEUE }, dryRun: true })).status).to.equal(403);
    expect((await call('POST', '/api/v1/parked/replay', operator, {})).status).to.equal(400);
  });

  it('replays by filter to the original queue, copies marked with the replay id and count, rows marked and audited', async function () {
    const res = await call('POST', '/api/v1/parked/replay', operator, { filter: { q: 'alpha' } });
    expect(res.status).to.equal(200);
    expect(res.json).to.include({ selected: 1, taken: 1, stale: 0, notFound: 0 });
    expect(await sys.queueDepth(DLQ)).to.equal(4);
    await waitFor('the copy in its work queue', async () => (await sys.queueDepth(QUEUE)) === 1);
    const conn = await amqp.connect(sys.amqpUrl);
    const ch = await conn.createChannel();
    const got = await ch.get(QUEUE, { noAck: false });
    if (!got) throw new Error('the replayed copy is not in its queue');
    const copy = got;
    expect(copy.properties.messageId).to.equal(ids.a);
    expect(copy.properties.headers).to.include({ 'x-warren-replay-count': 1, 'x-warren-replay-id': res.json.actionId });
    expect(Object.keys(copy.properties.headers ?? {}).filter((k) => k.startsWith('x-warren-') && !k.startsWith('x-warren-replay-'))).to.deep.equal([]);
    ch.nack(copy, false, true);
    await conn.close();
    expect(await rowOf(ids.a!, 'replayed')).to.include({ status_by: 'otto', status_action: res.json.actionId });
    const audit = await call('GET', '/api/v1/audit', viewer);
    expect(audit.json.items[0]).to.deep.include({ actor: 'otto', role: 'operator', action: 'replay', count: 1, outcome: 'ok' });
    expect(audit.json.items[0].selection.filter).to.deep.equal({ q: 'alpha' });
  });

  it('marks a message the worker parked again after the replay, and a bulk replay skips it unless asked', async function () {
    await sys.startWorker('analytics');
    await waitFor('the replayed copy parked again and indexed', async () => (await rowOf(ids.a!))?.replay_count !== undefined);
    const again = (await call('GET', '/api/v1/parked?failedAgainAfterReplay=true', viewer)).json.items;
    expect(again).to.have.length(1);
    expect(again[0]).to.include({ messageId: ids.a, replayCount: 1, failedAgainAfterReplay: true, kind: 'permanent' });
    const dry = await call('POST', '/api/v1/parked/replay', operator, { filter: { queue: QUEUE }, dryRun: true });
    expect(dry.json.selected).to.equal(4);
    const withIt = await call('POST', '/api/v1/parked/replay', operator, { filter: { queue: QUEUE }, dryRun: true, includeFailedAgain: true });
    expect(withIt.json.selected).to.equal(5);
  });

  it('discards selected messages with a reason, leaving the others parked', async function () {
    const [rowB, rowC] = [await rowOf(ids.b!), await rowOf(ids.c!)];
    const res = await call('POST', '/api/v1/parked/discard', operator, { ids: [rowB!.id, rowC!.id], reason: 'test data, never valid' });
    expect(res.status).to.equal(200);
    expect(res.json).to.include({ selected: 2, taken: 2, notFound: 0 });
    expect(await sys.queueDepth(DLQ)).to.equal(3);
    expect(await rowOf(ids.b!, 'discarded')).to.include({ status_by: 'otto' });
    const audit = (await call('GET', '/api/v1/audit?action=discard', viewer)).json.items;
    expect(audit[0]).to.deep.include({ action: 'discard', count: 2, outcome: 'ok' });
    expect(audit[0].selection.reason).to.equal('test data, never valid');
    expect((await call('POST', '/api/v1/parked/discard', operator, { ids: [rowB!.id] })).status).to.equal(400);
  });

  it('refuses to replay a message older than the inbox retention unless told, and says it left it parked', async function () {
    ids.old = await park('old', 'PermanentError: ancient', 30 * 86_400_000);
    await indexed(7);
    const row = (await rowOf(ids.old))!;
    const refused = await call('POST', '/api/v1/parked/replay', operator, { ids: [row.id] });
    expect(refused.json).to.include({ selected: 1, taken: 0, stale: 1 });
    expect(await rowOf(ids.old)).to.include({ status: 'parked' });
    const allowed = await call('POST', '/api/v1/parked/replay', operator, { ids: [row.id], allowStale: true });
    expect(allowed.json).to.include({ taken: 1, stale: 0 });
  });

  it('marks as gone what is no longer in its DLQ (purged with warren dlq)', async function () {
    await purgeParked(sys.amqpUrl, QUEUE);
    const row = (await rowOf(ids.d!))!;
    const res = await call('POST', '/api/v1/parked/replay', operator, { ids: [row.id] });
    expect(res.json).to.include({ selected: 1, taken: 0, notFound: 1 });
    expect(await rowOf(ids.d!, 'gone')).to.not.equal(undefined);
  });

  it('runs a replay in the background on request, its progress readable by id until it ends', async function () {
    const before = Number(((await db(PARKED_TABLE).count({ n: '*' })) as { n: number }[])[0]!.n);
    for (const text of ['omega 1', 'omega 2', 'omega 3']) await park(text, 'PermanentError: omega');
    await indexed(before + 3);
    const res = await fetch(`${base}/api/v1/parked/replay`, {
      method: 'POST',
      headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' },
      body: JSON.stringify({ filter: { reason: 'omega' }, background: true }),
    });
    expect(res.status).to.equal(202);
    const started = (await res.json()) as { actionId: string; selected: number; taken: number };
    expect(started).to.include({ selected: 3, taken: 0 });
    expect(res.headers.get('location')).to.equal(`/api/v1/actions/${started.actionId}`);
    const seen = new Set<string>();
    const done = await waitFor('the background replay done', async () => {
      const p = await call('GET', res.headers.get('location')!, viewer);
      expect(p.status).to.equal(200);
      seen.add(p.json.state);
      return p.json.state !== 'running' && p.json;
    });
    expect(done).to.deep.include({ actionId: started.actionId, action: 'replay', actor: 'otto', state: 'done', total: 3, taken: 3, done: 3, error: null });
    expect([...seen].every((s) => s === 'running' || s === 'done')).to.equal(true);
    const audit = (await call('GET', '/api/v1/audit?action=replay', viewer)).json.items;
    expect(audit[0]).to.deep.include({ count: 3, outcome: 'ok' });
    // A replay that was waited for has its record too.
    const waited = await call('POST', '/api/v1/parked/replay', operator, { ids: [(await rowOf(ids.e!))!.id as string], allowStale: true });
    expect((await call('GET', `/api/v1/actions/${waited.json.actionId}`, viewer)).json).to.deep.include({ state: 'done', total: 1, done: 1 });
    expect((await call('GET', '/api/v1/actions/no-such-action', viewer)).status).to.equal(404);
  });
});
