/** @file
 * Least privilege of `warren-console` on the broker (renamed per run, as in
 * security.test.ts): it reads the index queue and the DLQs, replays into
 * the work queues through `warren.return` and re-parks under their names,
 * and is refused everything else: a work queue's messages, a service
 * exchange, a foreign routing key, declaring.
 */
import crypto from 'node:crypto';
import amqplib, { type ChannelModel } from 'amqplib';
import { expect } from 'chai';
import { ManagementClient } from '../../src/topology/management';
import { applyTopology, loadDefinitions, renameUsers, retargetDefinitions } from '../../src/topology/definitions';
import { PARKED_INDEX_QUEUE } from '../../src/console/parkRecord';
import { createLogger } from '../../src/log';
import { replayParked } from '../../src/ops/dlq';
import { rawPublish } from '../support/amqp';
import { AMQP_BASE, MANAGEMENT_URL, TestSystem, waitFor } from '../support/system';

const QUEUE = 'analytics.tweets';

describe('broker permissions of the console user (integration)', function () {
  this.timeout(90_000);
  const sys = new TestSystem();
  const prefix = `wit-${crypto.randomBytes(3).toString('hex')}`;
  const user = `${prefix}-warren-console`;
  const password = crypto.randomBytes(12).toString('hex');
  const management = new ManagementClient(MANAGEMENT_URL);
  let conn: ChannelModel;
  let url = '';

  async function attempt(op: (ch: amqplib.ConfirmChannel) => Promise<unknown>): Promise<string> {
    const ch = await conn.createConfirmChannel();
    let closedWith = '';
    ch.on('error', (err: Error) => (closedWith = err.message));
    try {
      await op(ch);
      await ch.close();
      return 'ok';
    } catch (err) {
      const why = `${(err as Error).message} ${closedWith}`;
      return /ACCESS_REFUSED|403/.test(why) ? 'refused' : `error: ${why}`;
    }
  }

  const publish = (exchange: string, key: string) => (ch: amqplib.ConfirmChannel) =>
    new Promise<void>((resolve, reject) =>
      ch.publish(exchange, key, Buffer.from('{}'), { messageId: crypto.randomUUID() }, (err) => (err ? reject(err as Error) : resolve())),
    );

  before(async function () {
    await sys.setUp();
    const defs = renameUsers(retargetDefinitions(loadDefinitions(sys.config.amqp.definitionsFile), sys.vhost), (u) => `${prefix}-${u}`);
    await applyTopology({ managementUrl: MANAGEMENT_URL, vhost: sys.vhost, defs, passwords: { [user]: password }, log: createLogger('test', 'silent') });
    const u = new URL(`${AMQP_BASE}/${encodeURIComponent(sys.vhost)}`);
    u.username = user;
    u.password = password;
    url = u.toString();
    conn = await amqplib.connect(url);
    conn.on('error', () => undefined);
  });

  after(async function () {
    await conn?.close().catch(() => undefined);
    await sys.tearDown();
    await management.deleteUser(user).catch(() => undefined);
  });

  it('reads the index queue and the DLQs, and nothing of a work queue', async function () {
    expect(await attempt((ch) => ch.get(PARKED_INDEX_QUEUE))).to.equal('ok');
    expect(await attempt((ch) => ch.get(`${QUEUE}.dlq`))).to.equal('ok');
    expect(await attempt((ch) => ch.get('notifications.user-events.dlq'))).to.equal('ok');
    expect(await attempt((ch) => ch.get(QUEUE)), 'a work queue').to.equal('refused');
    expect(await attempt((ch) => ch.get('warren.delay.5s')), 'a delay queue').to.equal('refused');
  });

  it('publishes only replays and re-parks under a work queue name, and declares nothing', async function () {
    expect(await attempt(publish('warren.return', QUEUE))).to.equal('ok');
    expect(await attempt(publish('warren.dlx', QUEUE))).to.equal('ok');
    expect(await attempt(publish('warren.return', 'somewhere.else')), 'a foreign key on warren.return').to.equal('refused');
    expect(await attempt(publish('warren.dlx', '#')), 'a wildcard park').to.equal('refused');
    expect(await attempt(publish('tweets', 'tweet.created')), 'a service exchange').to.equal('refused');
    expect(await attempt(publish('warren.delay.5s', QUEUE)), 'a retry').to.equal('refused');
    expect(await attempt((ch) => ch.assertQueue('console-own-queue', { durable: false })), 'declare').to.equal('refused');
    expect(await attempt((ch) => ch.bindQueue(PARKED_INDEX_QUEUE, 'tweets', '#')), 'bind a copy of the events').to.equal('refused');
  });

  it('replays a parked message with its own credentials', async function () {
    const conn2 = await amqplib.connect(sys.amqpUrl);
    const ch = await conn2.createChannel();
    await ch.purgeQueue(QUEUE);
    await ch.purgeQueue(`${QUEUE}.dlq`);
    await conn2.close();
    await rawPublish(sys.amqpUrl, 'warren.dlx', QUEUE, '{}', {
      messageId: crypto.randomUUID(),
      type: 'tweet.created',
      timestamp: Math.floor(Date.now() / 1000),
      headers: { 'x-warren-original-queue': QUEUE, 'x-warren-error': 'PermanentError: x', 'x-warren-last-failure': new Date().toISOString() },
    });
    await waitFor('parked', async () => (await sys.queueDepth(`${QUEUE}.dlq`)) === 1);
    expect(await replayParked(url, QUEUE, { replayId: 'r-perm' })).to.include({ replayed: 1, remaining: 0 });
    await waitFor('replayed', async () => (await sys.queueDepth(QUEUE)) === 1);
  });
});
