/** @file
 * Export of a selection and the CLI's side of the console, on the real
 * broker: the console's export (a viewer may take one; nothing leaves a
 * DLQ; audited), `warren dlq replay --from-file` with that export and with
 * warren dlq export's file (exactly the listed messages still parked are
 * replayed, the rest stay in order, one gone since the export counted as
 * not found), and `warren dlq discard --id/--error --reason`; each CLI
 * command audited and its index rows marked.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { connectBroker, type BrokerConnection } from '../../src/broker/connection';
import { createConsoleApp } from '../../src/console/app';
import { listAudit } from '../../src/console/audit';
import { consoleExport } from '../../src/console/exportSelection';
import { ParkIndexer } from '../../src/console/indexer';
import { createOperatorToken } from '../../src/console/operatorTokens';
import { PARKED_TABLE } from '../../src/db/migrations/console';
import { openDatabase } from '../../src/db/knex';
import { createLogger } from '../../src/log';
import { listParked } from '../../src/ops/dlq';
import { dlqDiscard, dlqExport, dlqReplayFromFile } from '../../src/console/dlqCommands';
import { OperatorError } from '../../src/ops/operatorError';
import { rawPublish } from '../support/amqp';
import { TestSystem, waitFor } from '../support/system';

const QUEUE = 'analytics.tweets';
const DLQ = `${QUEUE}.dlq`;
const log = createLogger('test', 'silent');
const quiet = () => undefined;

describe('console: export, and warren dlq discard and replay --from-file (integration)', function () {
  this.timeout(120_000);
  const sys = new TestSystem();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-export-'));
  let db: Knex;
  let connection: BrokerConnection;
  let indexer: ParkIndexer;
  let server: http.Server;
  let base = '';
  let viewer = '';
  const ids: Record<string, string> = {};

  async function park(text: string, error: string): Promise<string> {
    const messageId = crypto.randomUUID();
    const at = new Date();
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

  const statusOf = async (messageId: string) =>
    ((await db(PARKED_TABLE).where({ message_id: messageId }).first('status', 'status_by')) as { status: string; status_by: string | null }) ?? undefined;
  const indexed = (n: number) => waitFor(`${n} parks indexed`, async () => Number(((await db(PARKED_TABLE).count({ n: '*' })) as { n: number }[])[0]!.n) === n);
  const parkedIds = async () => (await listParked(sys.amqpUrl, QUEUE, 100)).map((p) => p.messageId);

  before(async function () {
    await sys.setUp({ console: { maxPerAction: 3 } });
    db = openDatabase(sys.config, 'console');
    connection = connectBroker({ url: sys.amqpUrl, service: 'console', role: 'consume', heartbeatSeconds: 10, reconnectSeconds: 1, log });
    indexer = new ParkIndexer({ connection, db, log });
    viewer = (await createOperatorToken(db, 'viewer', 'vera', Date.now())).token;
    const app = createConsoleApp({ db, config: sys.config, log, amqpUrl: sys.amqpUrl });
    const handle = app.callback();
    server = http.createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    for (const [name, error] of [
      ['a', 'PermanentError: bad payload A'],
      ['b', 'PermanentError: bad payload B'],
      ['c', 'PermanentError: other trouble'],
      ['d', 'PermanentError: bad payload D'],
      ['e', 'PermanentError: unrelated'],
    ] as const)
      ids[name] = await park(`body ${name}`, error);
    await indexed(5);
  });

  after(async function () {
    await new Promise((resolve) => server?.close(resolve));
    await indexer?.stop();
    await connection?.close();
    await db?.destroy();
    await sys.tearDown();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('exports a filtered selection in full from the index, as a viewer, leaving every message parked; audited; capped', async function () {
    const res = await fetch(`${base}/api/v1/parked/export?reason=bad%20payload`, { headers: { authorization: `Bearer ${viewer}` } });
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-disposition')).to.match(/^attachment; filename="warren-parked-.*\.json"$/);
    const doc = consoleExport.parse(await res.json());
    expect(doc.messages.map((m) => m.messageId).sort()).to.deep.equal([ids.a, ids.b, ids.d].sort());
    expect(doc).to.include({ count: 3, exportedBy: 'vera' });
    expect(doc.selection).to.deep.include({ reason: 'bad payload' });
    expect(doc.messages[0]!.bodyText).to.match(/^not json: body /);
    expect(doc.messages[0]!.headers).to.have.property('x-warren-error');
    expect(await sys.queueDepth(DLQ)).to.equal(5);
    fs.writeFileSync(path.join(dir, 'console.json'), JSON.stringify(doc));
    const [entry] = await listAudit(db, { limit: 1 });
    expect(entry).to.deep.include({ actor: 'vera', role: 'viewer', action: 'export', count: 3, outcome: 'ok' });
    const capped = await fetch(`${base}/api/v1/parked/export`, { headers: { authorization: `Bearer ${viewer}` } });
    expect(capped.status).to.equal(409);
  });

  it('warren dlq discard takes only what --id or --error select, with its reason, audited, rows marked', async function () {
    let refused: unknown;
    await dlqDiscard(sys.config, QUEUE, { reason: 'no selection' }, quiet, quiet).catch((err: unknown) => (refused = err));
    expect(refused).to.be.instanceOf(OperatorError);
    const lines: string[] = [];
    await dlqDiscard(sys.config, QUEUE, { id: [ids.b!], reason: 'known bad test data' }, (l) => lines.push(l), quiet);
    expect(lines[0]).to.match(/^discarded 1, remaining 4 in analytics\.tweets\.dlq/);
    expect(await parkedIds()).to.deep.equal([ids.a, ids.c, ids.d, ids.e]);
    expect(await statusOf(ids.b!)).to.include({ status: 'discarded' });
    expect((await statusOf(ids.b!))!.status_by).to.match(/^cli:/);
    await dlqDiscard(sys.config, QUEUE, { error: 'UNRELATED', reason: 'noise' }, quiet, quiet);
    expect(await parkedIds()).to.deep.equal([ids.a, ids.c, ids.d]);
    const [last, first] = await listAudit(db, { limit: 2, action: 'dlq discard' });
    expect(first).to.deep.include({ role: 'cli', count: 1, outcome: 'ok' });
    expect(first!.selection).to.deep.include({ queue: QUEUE, ids: [ids.b], reason: 'known bad test data' });
    expect(last!.selection).to.deep.include({ error: 'UNRELATED', reason: 'noise' });
  });

  it('warren dlq replay --from-file replays the console export’s messages still parked, counts the one discarded since as not found', async function () {
    const lines: string[] = [];
    const r = await dlqReplayFromFile(sys.config, path.join(dir, 'console.json'), {}, (l) => lines.push(l), quiet);
    expect(r).to.deep.include({ listed: 3, replayed: 2, stale: 0, notFound: 1 });
    expect(lines[0]).to.equal(`replayed 2 of the 3 message(s) ${path.join(dir, 'console.json')} lists, 1 no longer parked`);
    expect(await parkedIds()).to.deep.equal([ids.c]);
    await waitFor('the copies in their work queue', async () => (await sys.queueDepth(QUEUE)) === 2);
    expect(await statusOf(ids.a!)).to.include({ status: 'replayed' });
    expect(await statusOf(ids.c!)).to.include({ status: 'parked' });
    const [entry] = await listAudit(db, { limit: 1 });
    expect(entry).to.deep.include({ role: 'cli', action: 'dlq replay', count: 2, outcome: 'ok' });
    expect(entry!.selection).to.deep.include({ messages: 3, queues: [QUEUE] });
  });

  it('warren dlq replay --from-file also takes warren dlq export’s file, and refuses a file of neither kind', async function () {
    const file = path.join(dir, 'cli.json');
    await dlqExport(sys.config, QUEUE, { file }, quiet);
    const f = (ids.f = await park('body f', 'PermanentError: after the export'));
    await waitFor('f parked', async () => (await sys.queueDepth(DLQ)) === 2);
    const r = await dlqReplayFromFile(sys.config, file, { json: true }, quiet, quiet);
    expect(r).to.deep.include({ listed: 1, replayed: 1, notFound: 0 });
    expect(await parkedIds()).to.deep.equal([f]);
    fs.writeFileSync(path.join(dir, 'other.json'), JSON.stringify({ messages: [{ id: 1 }] }));
    let refused: unknown;
    await dlqReplayFromFile(sys.config, path.join(dir, 'other.json'), {}, quiet, quiet).catch((err: unknown) => (refused = err));
    expect(refused).to.be.instanceOf(OperatorError);
    expect((refused as Error).message).to.match(/neither a console export nor a warren dlq export/);
  });
});
