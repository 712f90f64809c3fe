import crypto from 'node:crypto';
import amqplib, { type ChannelModel } from 'amqplib';
import { expect } from 'chai';
import { ManagementClient } from '../../src/topology/management';
import { apiNeeds, applyTopology, loadDefinitions, queuesNeededBy, renameUsers, retargetDefinitions, type Definitions } from '../../src/topology/definitions';
import { checkTopology } from '../../src/topology/check';
import { loadConfig } from '../../src/services';
import { createLogger } from '../../src/log';
import { SseClient } from '../support/sse';
import { AMQP_BASE, amqpUrlFor, MANAGEMENT_URL, TestSystem, TEST_DB, waitFor } from '../support/system';

/**
 * Least privilege on the broker: each service connects as its own user,
 * whose permissions (rabbitmq/definitions.json) let it do its job and
 * nothing else. Users are renamed per run so runs never share credentials.
 */
describe(`broker permissions of the service users (${TEST_DB})`, function () {
  this.timeout(90_000);
  const sys = new TestSystem();
  const prefix = `wit-${crypto.randomBytes(3).toString('hex')}`;
  const management = new ManagementClient(MANAGEMENT_URL);
  const passwords: Record<string, string> = {};
  type User = 'api' | 'analytics' | 'notifications' | 'monitor';
  const userOf = (service: User) => `${prefix}-warren-${service}`;
  const open: ChannelModel[] = [];
  let defs: Definitions;

  async function connectAs(service: User): Promise<ChannelModel> {
    const url = new URL(`${AMQP_BASE}/${encodeURIComponent(sys.vhost)}`);
    url.username = userOf(service);
    url.password = passwords[userOf(service)]!;
    const conn = await amqplib.connect(url.toString());
    conn.on('error', () => undefined);
    open.push(conn);
    return conn;
  }

  /** Runs one operation on a fresh channel; resolves to 'ok' or the broker's refusal. */
  async function attempt(conn: ChannelModel, op: (ch: amqplib.ConfirmChannel) => Promise<unknown>): Promise<string> {
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
    new Promise<void>((resolve, reject) => {
      ch.publish(exchange, key, Buffer.from('{}'), { messageId: crypto.randomUUID() }, (err) => (err ? reject(err) : resolve()));
    });

  before(async () => {
    for (const s of ['api', 'analytics', 'notifications', 'monitor'] as const) passwords[userOf(s)] = crypto.randomBytes(12).toString('hex');
    const env = {
      WARREN_AMQP_USERS_API_USERNAME: userOf('api'),
      WARREN_AMQP_USERS_API_PASSWORD: passwords[userOf('api')],
      WARREN_AMQP_USERS_ANALYTICS_USERNAME: userOf('analytics'),
      WARREN_AMQP_USERS_ANALYTICS_PASSWORD: passwords[userOf('analytics')],
      WARREN_AMQP_USERS_NOTIFICATIONS_USERNAME: userOf('notifications'),
      WARREN_AMQP_USERS_NOTIFICATIONS_PASSWORD: passwords[userOf('notifications')],
      // As in production: guest is refused, every process must use its own user.
      WARREN_AMQP_ALLOW_GUEST: 'false',
    };
    await sys.setUp();
    Object.assign(sys.env, env);
    const config = loadConfig(sys.env);
    defs = renameUsers(retargetDefinitions(loadDefinitions(config.amqp.definitionsFile), sys.vhost), (u) => `${prefix}-${u}`);
    await applyTopology({ managementUrl: MANAGEMENT_URL, vhost: sys.vhost, defs, passwords, log: createLogger('security-test', 'silent') });
  });

  after(async () => {
    await Promise.all(open.map((c) => c.close().catch(() => undefined)));
    await sys.tearDown();
    for (const user of Object.keys(passwords)) await management.deleteUser(user).catch(() => undefined);
  });

  it('runs the whole flow with each service on its own user, guest refused', async () => {
    await sys.startApi();
    await sys.startWorker('analytics');
    await sys.startWorker('notifications');
    const ada = await sys.createUser(`sec_${Date.now().toString(36).slice(-6)}`);
    expect((await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'least #privilege' } })).status).to.equal(201);
    await waitFor('the tweet counted', async () => (await sys.request('GET', `/analytics/users/${ada.id}`)).json?.tweetCount === 1);
    const connections = await waitFor('the service connections', async () => {
      const list = (await management.listConnections(sys.vhost)).filter((c) => c.user.startsWith(prefix));
      return list.length >= 5 ? list : undefined;
    });
    const ready = await waitFor(
      'readiness with least-privilege users',
      async () => {
        const res = await sys.request('GET', '/readyz');
        return res.status === 200 ? res : undefined;
      },
      10_000,
    ).catch(async () => sys.request('GET', '/readyz'));
    expect(ready.status, JSON.stringify(ready.json)).to.equal(200);
    expect(new Set(connections.map((c) => c.user))).to.deep.equal(new Set([userOf('api'), userOf('analytics'), userOf('notifications')]));
    // The live path too: the worker publishes to notifications.live, the API consumes its own server-named queue.
    const stream = await SseClient.open(`${sys.baseUrl}/users/${ada.id}/notifications/stream`, { authorization: `Bearer ${ada.token}` });
    try {
      await stream.waitUntil('the stream to open', (c) => c.comments.includes('connected'));
      expect((await sys.request('PATCH', `/users/${ada.id}`, { token: ada.token, body: { displayName: 'Least Privilege' } })).status).to.equal(200);
      await stream.waitUntil('the live notification', (c) => c.events.length >= 1, 5000);
      expect(stream.notifications()[0].text).to.include('Least Privilege');
    } finally {
      await stream.close();
    }
  });

  it("a worker's credentials can neither read nor publish into another service's queue, nor delete anything", async () => {
    const worker = await connectAs('analytics');
    expect(await attempt(worker, (ch) => ch.consume('notifications.user-events', () => undefined)), 'read another queue').to.equal('refused');
    expect(await attempt(worker, publish('user.events', 'user.updated')), "publish to another service's exchange").to.equal('refused');
    expect(await attempt(worker, publish('', 'notifications.user-events')), 'publish through the default exchange').to.equal('refused');
    expect(await attempt(worker, publish('tweets', 'tweet.created')), 'publish into its own source exchange').to.equal('refused');
    expect(await attempt(worker, (ch) => ch.deleteQueue('analytics.tweets')), 'delete its own queue').to.equal('refused');
    expect(await attempt(worker, (ch) => ch.deleteQueue('notifications.user-events')), 'delete another queue').to.equal('refused');
    expect(await attempt(worker, (ch) => ch.deleteExchange('tweets')), 'delete an exchange').to.equal('refused');
    expect(await attempt(worker, (ch) => ch.assertQueue('rogue', { durable: true })), 'declare').to.equal('refused');
  });

  it('a worker may consume its own queue and publish retries and parks only', async () => {
    const worker = await connectAs('analytics');
    expect(await attempt(worker, (ch) => ch.consume('analytics.tweets', () => undefined))).to.equal('ok');
    expect(await attempt(worker, publish('warren.delay.5s', 'analytics.tweets'))).to.equal('ok');
    expect(await attempt(worker, publish('warren.dlx', 'analytics.tweets'))).to.equal('ok');
    await waitFor('the test messages to arrive', async () => (await sys.queueDepth('analytics.tweets.dlq')) === 1);
  });

  it('the API may publish its events and own only its server-named live queue', async () => {
    const api = await connectAs('api');
    expect(await attempt(api, publish('tweets', 'tweet.created'))).to.equal('ok');
    expect(await attempt(api, publish('user.events', 'user.created'))).to.equal('ok');
    expect(await attempt(api, (ch) => ch.consume('analytics.tweets', () => undefined)), 'read a work queue').to.equal('refused');
    expect(await attempt(api, publish('warren.dlx', 'analytics.tweets')), 'park').to.equal('refused');
    expect(
      await attempt(api, async (ch) => {
        const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
        await ch.bindQueue(queue, 'notifications.live', '');
        await ch.consume(queue, () => undefined);
      }),
      'its own live queue',
    ).to.equal('ok');
  });

  it("a worker's credentials can neither put a retry or park into another service's queue nor bind a copy of its retries or parks", async () => {
    // A probe sees whatever the shared exchanges route for the other service.
    const admin = await amqplib.connect(amqpUrlFor(sys.vhost));
    admin.on('error', () => undefined);
    open.push(admin);
    const ch = await admin.createChannel();
    const probe = `${prefix}-probe`;
    await ch.assertQueue(probe, { durable: false, autoDelete: false });
    await ch.bindQueue(probe, 'warren.delay.5s', '#');
    await ch.bindQueue(probe, 'warren.dlx', 'notifications.user-events');
    await ch.bindQueue(probe, 'warren.return', 'notifications.user-events');
    const before = { work: await sys.queueDepth('notifications.user-events'), dlq: await sys.queueDepth('notifications.user-events.dlq') };

    const analytics = await connectAs('analytics');
    expect(await attempt(analytics, publish('warren.delay.5s', 'notifications.user-events')), "retry into another service's queue").to.equal('refused');
    expect(await attempt(analytics, publish('warren.delay.10m', 'notifications.user-events')), 'by another step').to.equal('refused');
    expect(await attempt(analytics, publish('warren.dlx', 'notifications.user-events')), "park into another service's DLQ").to.equal('refused');
    expect(await attempt(analytics, publish('warren.dlx', '#')), 'park with a wildcard key').to.equal('refused');
    expect(
      await attempt(analytics, (c) => c.bindQueue('analytics.tweets', 'warren.return', 'notifications.user-events')),
      "bind to another service's retries",
    ).to.equal('refused');
    expect(await attempt(analytics, (c) => c.bindQueue('analytics.tweets', 'warren.return', '#')), 'bind to every retry').to.equal('refused');
    expect(
      await attempt(analytics, (c) => c.bindQueue('analytics.tweets', 'warren.dlx', 'notifications.user-events')),
      "bind to another service's parks",
    ).to.equal('refused');
    expect(await attempt(analytics, (c) => c.bindQueue('analytics.tweets', 'warren.delay.5s', '#')), 'bind to a delay step').to.equal('refused');
    // Its own retry route still works.
    expect(await attempt(analytics, (c) => c.bindQueue('analytics.tweets', 'warren.return', 'analytics.tweets'))).to.equal('ok');

    // A retry the notifications service itself publishes reaches the probe: the probe would have seen an injected one.
    const control = crypto.randomUUID();
    const notifications = await connectAs('notifications');
    const sent = await attempt(
      notifications,
      (c) =>
        new Promise<void>((resolve, reject) =>
          c.publish('warren.delay.5s', 'notifications.user-events', Buffer.from('{}'), { messageId: control }, (err) => (err ? reject(err) : resolve())),
        ),
    );
    expect(sent).to.equal('ok');
    const first = await waitFor('the control retry at the probe', async () => (await ch.get(probe, { noAck: true })) || undefined, 5000);
    expect(first.properties.messageId, 'the first message the probe saw').to.equal(control);
    expect(await sys.queueDepth('notifications.user-events.dlq')).to.equal(before.dlq);
    expect(await sys.queueDepth('notifications.user-events')).to.be.at.most(before.work);
    await ch.deleteQueue(probe);
  });

  it('runs the start-up checks as the read-only monitoring user, which can neither change nor take anything', async () => {
    const url = new URL(MANAGEMENT_URL);
    url.username = userOf('monitor');
    url.password = passwords[userOf('monitor')]!;
    const asMonitor = { managementUrl: url.toString(), vhost: sys.vhost, defs };
    await checkTopology({ ...asMonitor, ...queuesNeededBy('analytics.tweets', defs) });
    await checkTopology({ ...asMonitor, ...queuesNeededBy('notifications.user-events', defs) });
    await checkTopology({ ...asMonitor, ...apiNeeds(defs) });
    const monitor = new ManagementClient(url.toString());
    const refusal = async (what: Promise<unknown>) =>
      what.then(
        () => 'ok',
        (err: Error) => (/\b40[13]\b/.test(err.message) ? 'refused' : err.message),
      );
    expect(await refusal(monitor.putQueue(sys.vhost, `${prefix}-rogue`, { durable: true, auto_delete: false, arguments: {} })), 'declare').to.equal('refused');
    expect(await refusal(monitor.deleteQueue(sys.vhost, 'analytics.tweets.dlq')), 'delete').to.equal('refused');
    expect(await refusal(monitor.setPermissions(sys.vhost, userOf('monitor'), { configure: '.*', write: '.*', read: '.*' })), 'grant itself').to.equal(
      'refused',
    );
    // Reading over AMQP would take messages: it may not.
    const conn = await connectAs('monitor');
    expect(await attempt(conn, (c) => c.get('analytics.tweets.dlq')), 'take a parked message').to.equal('refused');
    expect(await attempt(conn, publish('warren.dlx', 'analytics.tweets')), 'park').to.equal('refused');
  });
});
