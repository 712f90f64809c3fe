import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import amqp, { type ChannelModel, type ConfirmChannel, type GetMessage } from 'amqplib';
import { expect } from 'chai';
import { projectRoot } from '../../src/config';
import { loadConfig } from '../../src/services';
import { createLogger } from '../../src/log';
import { dlqExport } from '../../src/console/dlqCommands';
import { exportParked, listParked, purgeParked, replayParked, type ReplayProgress } from '../../src/ops/dlq';
import { ManagementClient } from '../../src/topology/management';
import { applyTopology, loadDefinitions } from '../../src/topology/definitions';
import { amqpUrlFor, waitFor } from '../support/system';

const config = loadConfig({ ...process.env, NODE_ENV: 'test' });
const managementUrl = config.amqp.managementUrl;
const defs = loadDefinitions(path.join(projectRoot, 'rabbitmq', 'definitions.json'));
const QUEUE = 'analytics.tweets';
const DLQ = 'analytics.tweets.dlq';

interface TestMessage {
  messageId: string;
  body: Buffer;
}

describe('dead-letter tooling (integration)', function () {
  const vhost = `warren-test-${crypto.randomBytes(6).toString('hex')}`;
  const url = amqpUrlFor(vhost);
  const api = new ManagementClient(managementUrl);
  let conn: ChannelModel | undefined;
  let channel: ConfirmChannel;
  let parkedIds: string[] = [];

  const ready = async (queue: string) => (await channel.checkQueue(queue)).messageCount;

  /** Parks a message the way Warren's consumer does: Warren's headers, published to warren.dlx. */
  async function parkLikeWarren(n: number, error = `TransientError: database busy ${n}`): Promise<TestMessage> {
    const messageId = crypto.randomUUID();
    const body = Buffer.from(JSON.stringify({ tweetId: `t${n}`, text: `tweet ${n}` }));
    channel.publish('warren.dlx', QUEUE, body, {
      persistent: true,
      mandatory: true,
      messageId,
      type: 'tweet.created',
      contentType: 'application/json',
      correlationId: `req-${n}`,
      timestamp: 1_700_000_000 + n,
      appId: 'warren-api',
      headers: {
        'x-schema-version': '1.0',
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        'x-warren-error': error,
        'x-warren-error-kind': 'exhausted',
        'x-warren-attempts': 5,
        'x-warren-first-failure': '2024-01-01T00:00:00.000Z',
        'x-warren-last-failure': '2024-01-01T00:10:00.000Z',
        'x-warren-original-queue': QUEUE,
        'x-warren-original-exchange': 'tweets',
        'x-warren-original-routing-key': 'tweet.created',
      },
    });
    await channel.waitForConfirms();
    return { messageId, body };
  }

  const parkedIdsInOrder = async () => (await listParked(url, QUEUE, 1000)).map((p) => p.messageId);

  function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  }

  async function drain(queue: string): Promise<GetMessage[]> {
    const out: GetMessage[] = [];
    for (let msg = await channel.get(queue, { noAck: true }); msg; msg = await channel.get(queue, { noAck: true })) out.push(msg);
    return out;
  }

  before(async function () {
    await applyTopology({ managementUrl, vhost, defs, log: createLogger('dlq-test', 'silent') });
    conn = await amqp.connect(url);
    channel = await conn.createConfirmChannel();
    // A test publish that is returned must fail loudly, not vanish.
    channel.on('return', (msg: GetMessage) => {
      throw new Error(`test publish returned: ${msg.fields.routingKey}`);
    });
  });

  after(async function () {
    await conn?.close().catch(() => undefined);
    await api.deleteVhost(vhost);
  });

  it('lists parked messages and leaves them parked', async function () {
    const parked = [await parkLikeWarren(1), await parkLikeWarren(2), await parkLikeWarren(3)];
    parkedIds = parked.map((p) => p.messageId);
    await waitFor('3 parked', async () => (await ready(DLQ)) === 3);

    const listed = await listParked(url, QUEUE, 10);
    expect(listed.map((p) => p.messageId)).to.have.members(parked.map((p) => p.messageId));
    expect(listed[0]).to.include({
      type: 'tweet.created',
      kind: 'exhausted',
      attempts: 5,
      firstFailure: '2024-01-01T00:00:00.000Z',
      lastFailure: '2024-01-01T00:10:00.000Z',
      originalQueue: QUEUE,
    });
    expect(listed[0]!.reason).to.match(/^TransientError: database busy \d$/);

    expect(await listParked(url, QUEUE, 2)).to.have.length(2);
    await waitFor('all 3 back in the DLQ', async () => (await ready(DLQ)) === 3);
  });

  it('replays them to their queue without the parking headers, then the DLQ is empty', async function () {
    const result = await replayParked(url, QUEUE);
    expect(result).to.deep.equal({ replayed: 3, skipped: 0, remaining: 0, interrupted: false });
    expect(await ready(DLQ)).to.equal(0);

    await waitFor('3 replayed in the work queue', async () => (await ready(QUEUE)) === 3);
    const replayed = await drain(QUEUE);
    expect(replayed.map((m) => m.properties.messageId)).to.have.members(parkedIds);
    for (const msg of replayed) {
      const p = msg.properties;
      const n = Number(JSON.parse(msg.content.toString()).tweetId.slice(1));
      expect(p.messageId).to.be.a('string');
      expect(p).to.include({
        type: 'tweet.created',
        contentType: 'application/json',
        correlationId: `req-${n}`,
        timestamp: 1_700_000_000 + n,
        appId: 'warren-api',
        deliveryMode: 2,
      });
      expect(p.headers).to.include({ 'x-schema-version': '1.0', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
      expect(Object.keys(p.headers ?? {}).filter((k) => k.startsWith('x-warren-') || k.includes('death'))).to.deep.equal([]);
    }
  });

  it('replays at most --limit messages', async function () {
    await parkLikeWarren(4);
    await parkLikeWarren(5);
    await waitFor('2 parked', async () => (await ready(DLQ)) === 2);
    expect(await replayParked(url, QUEUE, { limit: 1 })).to.deep.equal({ replayed: 1, skipped: 0, remaining: 1, interrupted: false });
    await waitFor('1 replayed', async () => (await ready(QUEUE)) === 1);
    await drain(QUEUE);
  });

  it('purges the DLQ and counts what it deleted', async function () {
    await parkLikeWarren(6);
    await waitFor('2 parked', async () => (await ready(DLQ)) === 2);
    expect(await purgeParked(url, QUEUE)).to.equal(2);
    expect(await ready(DLQ)).to.equal(0);
    expect(await purgeParked(url, QUEUE)).to.equal(0);
  });

  it('lists a crash loop parked by the broker (x-death delivery_limit) and replays it', async function () {
    const messageId = crypto.randomUUID();
    const body = Buffer.from('{"tweetId":"crash"}');
    channel.publish('warren.return', QUEUE, body, { persistent: true, mandatory: true, messageId, type: 'tweet.created', contentType: 'application/json' });
    await channel.waitForConfirms();
    // Each requeue counts a delivery; past the policy's delivery-limit the broker dead-letters it to warren.dlx.
    await waitFor('the broker to park the crash loop', async () => {
      const msg = await channel.get(QUEUE, { noAck: false });
      if (msg) channel.nack(msg, false, true);
      return (await ready(DLQ)) === 1;
    });

    const [parked] = await listParked(url, QUEUE, 10);
    expect(parked).to.include({ messageId, type: 'tweet.created', kind: 'crash-loop', reason: 'delivery_limit', attempts: null, originalQueue: QUEUE });
    expect(parked!.lastFailure).to.match(/^\d{4}-\d\d-\d\dT/);

    expect(await replayParked(url, QUEUE)).to.deep.equal({ replayed: 1, skipped: 0, remaining: 0, interrupted: false });
    await waitFor('the crash loop back in its queue', async () => (await ready(QUEUE)) === 1);
    const [back] = await drain(QUEUE);
    expect(back!.properties.messageId).to.equal(messageId);
    expect(back!.content.equals(body)).to.equal(true);
    expect(Object.keys(back!.properties.headers ?? {}).filter((k) => k.includes('death'))).to.deep.equal([]);
  });

  it('leaves a parked message without an original queue parked', async function () {
    channel.publish('warren.dlx', QUEUE, Buffer.from('{}'), { persistent: true, messageId: crypto.randomUUID(), type: 'tweet.created' });
    await channel.waitForConfirms();
    await waitFor('1 parked', async () => (await ready(DLQ)) === 1);
    expect(await replayParked(url, QUEUE)).to.deep.equal({ replayed: 0, skipped: 1, remaining: 1, interrupted: false });
    await waitFor('it is back in the DLQ', async () => (await ready(DLQ)) === 1);
  });

  it('stops at a replay the broker returns, and leaves that message parked', async function () {
    await purgeParked(url, QUEUE);
    const messageId = crypto.randomUUID();
    // warren.return has no binding for this queue, so the replayed copy is unroutable.
    channel.publish('warren.dlx', QUEUE, Buffer.from('{}'), { persistent: true, messageId, headers: { 'x-warren-original-queue': 'gone.queue' } });
    const next = await parkLikeWarren(7);
    await waitFor('2 parked', async () => (await ready(DLQ)) === 2);

    // One at a time: nothing after the failed message is touched.
    let error: (Error & { replayed?: number }) | undefined;
    await replayParked(url, QUEUE, { window: 1 }).catch((err: Error) => (error = err));
    expect(error?.message).to.match(
      new RegExp(`^replay stopped after 0 message\\(s\\): message ${messageId} to queue gone\\.queue: publish returned: NO_ROUTE`),
    );
    expect(error?.replayed).to.equal(0);
    await waitFor('both still parked', async () => (await ready(DLQ)) === 2);
    expect(await ready(QUEUE)).to.equal(0);
    // The failed one goes back with a requeue, which RabbitMQ 3.10 puts at the tail.
    expect(await parkedIdsInOrder()).to.deep.equal([next.messageId, messageId]);

    // With a window, the replays already in flight beside it finish; the failed one stays parked.
    let second: Error | undefined;
    await replayParked(url, QUEUE).catch((err: Error) => (second = err));
    expect(second?.message).to.match(
      new RegExp(`^replay stopped after 1 message\\(s\\): message ${messageId} to queue gone\\.queue: publish returned: NO_ROUTE`),
    );
    await waitFor('the unroutable one still parked', async () => (await ready(DLQ)) === 1);
    expect(await parkedIdsInOrder()).to.deep.equal([messageId]);
    await waitFor('the other replayed', async () => (await ready(QUEUE)) === 1);
    expect((await drain(QUEUE)).map((m) => m.properties.messageId)).to.deep.equal([next.messageId]);
    expect(await purgeParked(url, QUEUE)).to.equal(1);
  });

  it('replays only messages whose error matches, leaving the others parked in their order', async function () {
    await purgeParked(url, QUEUE);
    const errors = [
      'TransientError: database busy',
      'PermanentError: bad body',
      'TransientError: DATABASE BUSY again',
      'PermanentError: unknown type',
      'TransientError: timeout',
    ];
    const parked = [];
    for (const [i, e] of errors.entries()) parked.push(await parkLikeWarren(10 + i, e));
    await waitFor('5 parked', async () => (await ready(DLQ)) === 5);
    expect(await parkedIdsInOrder()).to.deep.equal(parked.map((p) => p.messageId));

    const result = await replayParked(url, QUEUE, { errorContains: 'database busy' });
    expect(result).to.deep.equal({ replayed: 2, skipped: 3, remaining: 3, interrupted: false });
    await waitFor('3 back in the DLQ', async () => (await ready(DLQ)) === 3);
    expect(await parkedIdsInOrder()).to.deep.equal([parked[1]!, parked[3]!, parked[4]!].map((p) => p.messageId));
    await waitFor('2 replayed', async () => (await ready(QUEUE)) === 2);
    expect((await drain(QUEUE)).map((m) => m.properties.messageId)).to.deep.equal([parked[0]!, parked[2]!].map((p) => p.messageId));

    // Run again with a filter nothing matches: every message is looked at once, none loops, order kept.
    expect(await replayParked(url, QUEUE, { errorContains: 'no such error' })).to.deep.equal({ replayed: 0, skipped: 3, remaining: 3, interrupted: false });
    await waitFor('3 still parked', async () => (await ready(DLQ)) === 3);
    expect(await parkedIdsInOrder()).to.deep.equal([parked[1]!, parked[3]!, parked[4]!].map((p) => p.messageId));
  });

  it('replays one message by id, and -n counts only selected messages', async function () {
    const ids = await parkedIdsInOrder();
    expect(await replayParked(url, QUEUE, { ids: [ids[1]!] })).to.deep.equal({ replayed: 1, skipped: 2, remaining: 2, interrupted: false });
    await waitFor('1 replayed', async () => (await ready(QUEUE)) === 1);
    expect((await drain(QUEUE)).map((m) => m.properties.messageId)).to.deep.equal([ids[1]]);
    await waitFor('2 parked', async () => (await ready(DLQ)) === 2);
    expect(await parkedIdsInOrder()).to.deep.equal([ids[0], ids[2]]);

    expect(await replayParked(url, QUEUE, { errorContains: 'timeout', limit: 1 })).to.deep.equal({ replayed: 1, skipped: 1, remaining: 1, interrupted: false });
    await waitFor('1 parked', async () => (await ready(DLQ)) === 1);
    expect(await parkedIdsInOrder()).to.deep.equal([ids[0]]);
    await drain(QUEUE);
    await purgeParked(url, QUEUE);
  });

  it('an interrupted replay loses nothing: what was not replayed stays parked, in order', async function () {
    const parked = [];
    for (let i = 0; i < 20; i++) parked.push(await parkLikeWarren(100 + i));
    await waitFor('20 parked', async () => (await ready(DLQ)) === 20);
    const ctl = new AbortController();
    const seen: ReplayProgress[] = [];
    const result = await replayParked(url, QUEUE, {
      onProgress: (p) => {
        seen.push(p);
        if (p.replayed === 10) ctl.abort();
      },
      signal: ctl.signal,
      window: 5,
    });
    expect(result).to.deep.equal({ replayed: 10, skipped: 0, remaining: 10, interrupted: true });
    expect(seen[0]).to.deep.equal({ scanned: 0, total: 20, replayed: 0, skipped: 0 });
    expect(seen.map((p) => p.replayed)).to.deep.equal([0, 5, 10]);
    await waitFor('10 replayed', async () => (await ready(QUEUE)) === 10);
    expect((await drain(QUEUE)).map((m) => m.properties.messageId)).to.deep.equal(parked.slice(0, 10).map((p) => p.messageId));
    expect(await parkedIdsInOrder()).to.deep.equal(parked.slice(10).map((p) => p.messageId));
  });

  it('exports body, properties and headers, and leaves every message parked', async function () {
    const exported = await exportParked(url, QUEUE);
    expect(exported).to.have.length(10);
    const first = exported[0]!;
    expect(first.bodyEncoding).to.equal('utf8');
    expect(JSON.parse(first.body)).to.deep.equal({ tweetId: 't110', text: 'tweet 110' });
    expect(first.properties).to.include({ type: 'tweet.created', contentType: 'application/json', correlationId: 'req-110', appId: 'warren-api' });
    expect(first.properties.headers).to.include({ 'x-warren-error-kind': 'exhausted', 'x-warren-original-queue': QUEUE, 'x-schema-version': '1.0' });
    expect(first.parked).to.include({ kind: 'exhausted', attempts: 5, originalQueue: QUEUE });
    expect(first).to.include({ exchange: 'warren.dlx', routingKey: QUEUE });
    await waitFor('10 still parked', async () => (await ready(DLQ)) === 10);
    expect(await purgeParked(url, QUEUE)).to.equal(10);
  });

  it('a filtered replay over hundreds of messages leaves the rest parked in order, as exact copies', async function () {
    await purgeParked(url, QUEUE);
    const parked = [];
    for (let i = 0; i < 300; i++) parked.push(await parkLikeWarren(1000 + i, i % 3 === 0 ? 'TransientError: database busy' : 'PermanentError: bad body'));
    await waitFor('300 parked', async () => (await ready(DLQ)) === 300);
    // Read nothing before the replay: looking at a DLQ requeues, which may reorder it (RabbitMQ 3.10).
    expect(await replayParked(url, QUEUE, { errorContains: 'database busy' })).to.deep.equal({
      replayed: 100,
      skipped: 200,
      remaining: 200,
      interrupted: false,
    });
    await waitFor('200 parked', async () => (await ready(DLQ)) === 200);
    const after = await exportParked(url, QUEUE);
    expect(after.map((m) => m.parked.messageId)).to.deep.equal(parked.filter((_, i) => i % 3 !== 0).map((p) => p.messageId));
    for (const m of after) {
      const n = Number(JSON.parse(m.body).tweetId.slice(1));
      expect(m.body).to.equal(JSON.stringify({ tweetId: `t${n}`, text: `tweet ${n}` }));
      expect(m.parked).to.include({
        kind: 'exhausted',
        attempts: 5,
        reason: 'PermanentError: bad body',
        originalQueue: QUEUE,
        firstFailure: '2024-01-01T00:00:00.000Z',
      });
      expect(m.properties).to.include({
        correlationId: `req-${n}`,
        timestamp: 1_700_000_000 + n,
        appId: 'warren-api',
        type: 'tweet.created',
        contentType: 'application/json',
      });
      expect(m.properties.headers).to.include({
        'x-schema-version': '1.0',
        'x-warren-original-exchange': 'tweets',
        'x-warren-original-routing-key': 'tweet.created',
      });
    }
    await waitFor('100 replayed', async () => (await ready(QUEUE)) === 100);
    await drain(QUEUE);
    expect(await purgeParked(url, QUEUE)).to.equal(200);
  });

  it('`warren dlq replay` stopped with Ctrl-C prints what it did and loses nothing', async function () {
    await purgeParked(url, QUEUE);
    const total = 3000;
    for (let i = 0; i < total; i++) {
      channel.publish('warren.dlx', QUEUE, Buffer.from(`{"n":${i}}`), {
        persistent: true,
        messageId: `bulk-${i}`,
        type: 'tweet.created',
        timestamp: Math.floor(Date.now() / 1000),
        headers: { 'x-warren-original-queue': QUEUE, 'x-warren-error': 'TransientError: bulk' },
      });
    }
    await channel.waitForConfirms();
    await waitFor(`${total} parked`, async () => (await ready(DLQ)) === total);

    const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
    const child = spawn(process.execPath, [cli, 'dlq', 'replay', QUEUE, '--all'], {
      env: { ...process.env, NODE_ENV: 'test', WARREN_AMQP_URL: url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    await waitFor('some replays', async () => (await ready(QUEUE)) >= 200, 20_000, 20);
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));

    expect(code, stderr).to.equal(130);
    expect(stderr).to.contain('stopping after the messages in flight');
    const m = /^interrupted: replayed (\d+), skipped 0, remaining (\d+) in analytics\.tweets\.dlq/.exec(stdout);
    expect(m, stdout).to.not.equal(null);
    const replayed = Number(m![1]);
    expect(replayed).to.be.within(200, total - 1);
    expect(Number(m![2])).to.equal(total - replayed);
    // Every message is in exactly one place: replayed into the work queue, or still parked, in order.
    await waitFor('the counts to settle', async () => (await ready(QUEUE)) === replayed && (await ready(DLQ)) === total - replayed);
    const back = await drain(QUEUE);
    expect(back.map((msg) => msg.properties.messageId)).to.deep.equal(Array.from({ length: replayed }, (_, i) => `bulk-${i}`));
    const still = await listParked(url, QUEUE, total);
    expect(still.map((p) => p.messageId)).to.deep.equal(Array.from({ length: total - replayed }, (_, i) => `bulk-${replayed + i}`));
    expect(await purgeParked(url, QUEUE)).to.equal(total - replayed);
  });

  /** A parked message that says its age only through the times given (AMQP timestamp in seconds). */
  async function parkAged(label: string, times: { timestamp?: number; firstFailure?: number; death?: number }): Promise<string> {
    const messageId = `${label}-${crypto.randomUUID()}`;
    const headers: Record<string, unknown> = { 'x-warren-original-queue': QUEUE, 'x-warren-error': `TransientError: ${label}` };
    if (times.firstFailure !== undefined) headers['x-warren-first-failure'] = new Date(times.firstFailure).toISOString();
    if (times.death !== undefined) {
      // As the broker writes it for a crash loop, without Warren's headers.
      delete headers['x-warren-error'];
      delete headers['x-warren-original-queue'];
      headers['x-death'] = [
        {
          count: 1,
          reason: 'delivery_limit',
          queue: QUEUE,
          exchange: '',
          'routing-keys': [QUEUE],
          time: { '!': 'timestamp', value: Math.floor(times.death / 1000) },
        },
      ];
    }
    channel.publish('warren.dlx', QUEUE, Buffer.from('{}'), {
      persistent: true,
      mandatory: true,
      messageId,
      type: 'tweet.created',
      ...(times.timestamp !== undefined ? { timestamp: Math.floor(times.timestamp / 1000) } : {}),
      headers,
    });
    await channel.waitForConfirms();
    return messageId;
  }

  it('leaves parked, by default, every selected message that may be older than its inbox records, by the earliest time it carries', async function () {
    await purgeParked(url, QUEUE);
    const now = Date.now();
    const hour = 3_600_000;
    const fresh = await parkAged('fresh', { timestamp: now - 60_000, firstFailure: now - 30_000 });
    const oldFailure = await parkAged('old-failure', { firstFailure: now - 3 * hour });
    // Failed only now, but made hours ago: another copy may have been applied then.
    const oldEvent = await parkAged('old-event', { timestamp: now - 3 * hour, firstFailure: now - 30_000 });
    const freshDeath = await parkAged('fresh-death', { death: now - 60_000 });
    const oldDeath = await parkAged('old-death', { death: now - 3 * hour });
    const unknown = await parkAged('unknown', {});
    await waitFor('6 parked', async () => (await ready(DLQ)) === 6);

    const result = await replayParked(url, QUEUE, { staleBefore: now - 2 * hour });
    expect(result).to.deep.equal({ replayed: 2, skipped: 4, remaining: 4, interrupted: false, stale: 4 });
    await waitFor('2 replayed', async () => (await ready(QUEUE)) === 2);
    expect((await drain(QUEUE)).map((m) => m.properties.messageId)).to.deep.equal([fresh, freshDeath]);
    await waitFor('4 still parked', async () => (await ready(DLQ)) === 4);
    expect(await parkedIdsInOrder()).to.deep.equal([oldFailure, oldEvent, oldDeath, unknown]);
    expect(await purgeParked(url, QUEUE)).to.equal(4);
  });

  it('`warren dlq replay` with a shortened inbox.retentionDays refuses the messages past it in one line, replays the rest, and --allow-stale replays them', async function () {
    await purgeParked(url, QUEUE);
    const now = Date.now();
    // Kept an hour: past 54 minutes (the hour less a tenth) a record may be gone.
    const env = { ...process.env, NODE_ENV: 'test', WARREN_AMQP_URL: url, WARREN_INBOX_RETENTION_DAYS: String(1 / 24) };
    const young = await parkAged('young', { timestamp: now - 50 * 60_000, firstFailure: now - 40 * 60_000 });
    const old = await parkAged('old', { timestamp: now - 58 * 60_000, firstFailure: now - 57 * 60_000 });
    await waitFor('2 parked', async () => (await ready(DLQ)) === 2);

    const first = await runCli(['dlq', 'replay', QUEUE, '--all'], env);
    expect(first.code, first.stderr).to.equal(0);
    expect(first.stdout.trim()).to.equal(`replayed 1, skipped 1, remaining 1 in ${DLQ} (selected: every parked message)`);
    const lines = first.stderr.trim().split('\n');
    expect(lines).to.deep.equal([
      `left 1 selected message(s) in ${DLQ}: older than 54m (inbox.retentionDays ${1 / 24} less a margin) or of unknown age, ` +
        'so the record that keeps a consumer from applying them twice may be pruned; check them (warren dlq export) and rerun with --allow-stale to replay them anyway',
    ]);
    await waitFor('the young one replayed', async () => (await ready(QUEUE)) === 1);
    expect((await drain(QUEUE)).map((m) => m.properties.messageId)).to.deep.equal([young]);
    await waitFor('the old one still parked', async () => (await ready(DLQ)) === 1);

    const json = await runCli(['dlq', 'replay', QUEUE, '--all', '--json'], env);
    expect(JSON.parse(json.stdout)).to.deep.equal({ replayed: 0, skipped: 1, remaining: 1, interrupted: false, stale: 1 });

    const forced = await runCli(['dlq', 'replay', QUEUE, '--all', '--allow-stale'], env);
    expect(forced.code, forced.stderr).to.equal(0);
    expect(forced.stderr).to.equal('');
    expect(forced.stdout).to.match(/^replayed 1, skipped 0, remaining 0 in /);
    await waitFor('the old one replayed', async () => (await ready(QUEUE)) === 1);
    expect((await drain(QUEUE)).map((m) => m.properties.messageId)).to.deep.equal([old]);
  });

  it('`warren dlq export` never writes through a symlink planted at a temporary name, and the export is owner-only', async function () {
    await purgeParked(url, QUEUE);
    await parkLikeWarren(9000);
    await waitFor('1 parked', async () => (await ready(DLQ)) === 1);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-dlq-export-'));
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'not yours\n', { mode: 0o644 });
    const file = path.join(dir, 'parked.json');
    // The name a temporary file beside the target would be guessed by: the process id.
    fs.symlinkSync(victim, `${file}.${process.pid}.tmp`);
    const other = path.join(dir, 'other');
    fs.writeFileSync(other, 'not yours either\n', { mode: 0o644 });
    fs.symlinkSync(other, file);
    const printed: string[] = [];
    try {
      await dlqExport({ ...config, amqp: { ...config.amqp, url } }, QUEUE, { file }, (line) => printed.push(line));
      expect(fs.readFileSync(victim, 'utf8')).to.equal('not yours\n');
      expect(fs.readFileSync(other, 'utf8')).to.equal('not yours either\n');
      expect(fs.lstatSync(file).isSymbolicLink()).to.equal(false);
      expect(fs.statSync(file).mode & 0o777).to.equal(0o600);
      expect(JSON.parse(fs.readFileSync(file, 'utf8'))).to.include({ queue: QUEUE, count: 1 });
      expect(printed).to.deep.equal([`exported 1 message(s) of ${DLQ} to ${file}; they stay parked`]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    await waitFor('still parked', async () => (await ready(DLQ)) === 1);
    expect(await purgeParked(url, QUEUE)).to.equal(1);
  });

  it('names a work queue that has no DLQ', async function () {
    let error: Error | undefined;
    await listParked(url, 'no.such.queue', 1).catch((err: Error) => (error = err));
    expect(error?.message).to.match(/queue no\.such\.queue\.dlq in vhost warren-test-\w+: .*NOT_FOUND/);
  });
});
