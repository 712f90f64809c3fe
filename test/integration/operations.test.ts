import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { dlqOf } from '../../src/topology/definitions';
import { nodeLabel } from '../../src/broker/nodes';
import { timelineInstances, type StatusReport } from '../../src/ops/status';
import { rawPublish } from '../support/amqp';
import { TestSystem, waitFor, type WarrenProcess } from '../support/system';

/**
 * What an operator sees of a running Warren: the management UI's view of
 * real `warren api` and `warren worker` processes (connection names,
 * consumer tags, effective policies), and the `warren status`, `topology
 * check` and `dlq` commands run as an operator runs them.
 */
const cli = path.resolve(__dirname, '..', '..', 'src', 'cli.js');
const host = os.hostname();
const QUEUE = 'analytics.tweets';
const DLQ = dlqOf(QUEUE);

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('operating Warren (integration)', function () {
  const sys = new TestSystem();
  let api: WarrenProcess;
  let analytics: WarrenProcess;
  let notifications: WarrenProcess;
  const exportDir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-export-'));

  /** The real command, stdin not a terminal, as a script or CI would run it. */
  function warren(...args: string[]): Promise<CliRun> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [cli, ...args], { env: { ...sys.env, WARREN_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  }

  /** A valid tweet.created parked the way the consumer parks one that exhausted its attempts. */
  async function parkTweet(authorId: string, error: string): Promise<string> {
    const messageId = crypto.randomUUID();
    const body = { tweetId: crypto.randomUUID(), authorId, authorHandle: 'opsuser', text: 'parked #ops', createdAt: new Date().toISOString() };
    await rawPublish(sys.amqpUrl, 'warren.dlx', QUEUE, JSON.stringify(body), {
      mandatory: true,
      messageId,
      type: 'tweet.created',
      contentType: 'application/json',
      timestamp: Math.floor(Date.now() / 1000),
      headers: {
        'x-schema-version': '1.0',
        'x-warren-error': error,
        'x-warren-error-kind': 'exhausted',
        'x-warren-attempts': 2,
        'x-warren-first-failure': new Date(Date.now() - 120_000).toISOString(),
        'x-warren-last-failure': new Date(Date.now() - 60_000).toISOString(),
        'x-warren-original-queue': QUEUE,
        'x-warren-original-exchange': 'tweets',
        'x-warren-original-routing-key': 'tweet.created',
      },
    });
    return messageId;
  }

  before(async function () {
    this.timeout(120_000);
    await sys.setUp();
    api = await sys.startApi();
    analytics = await sys.startWorker('analytics');
    notifications = await sys.startWorker('notifications');
    await sys.startWorker('timeline');
  });

  after(async function () {
    this.timeout(60_000);
    await sys.tearDown();
    fs.rmSync(exportDir, { recursive: true, force: true });
  });

  it('names every connection in the management UI by service, host, pid, role and the node it is on', async function () {
    const node = nodeLabel(sys.amqpUrl);
    const expected = [
      `warren api ${host} pid ${api.child.pid} publish on ${node}`,
      `warren worker analytics ${host} pid ${analytics.child.pid} consume on ${node}`,
      `warren worker analytics ${host} pid ${analytics.child.pid} publish on ${node}`,
      `warren worker notifications ${host} pid ${notifications.child.pid} consume on ${node}`,
      `warren worker notifications ${host} pid ${notifications.child.pid} publish on ${node}`,
    ];
    const names = await waitFor('every process to show its connections', async () => {
      const listed = (await sys.management.listConnections(sys.vhost)).map((c) => c.client_properties?.connection_name ?? `(unnamed ${c.name})`);
      return expected.every((n) => listed.includes(n)) && listed;
    });
    for (const name of names) expect(name).to.match(/^warren [\w .-]+ pid \d+ (publish|consume|inspect) on [\w.-]+:\d+$/);
  });

  it('names each consumer after the worker process that holds it', async function () {
    // The management API lists a consumer before its channel's details (they come with the next stats emission, ~1 s).
    const consumers = await waitFor("both work queues' consumers listed with their channels", async () => {
      const listed = await sys.management.listConsumers(sys.vhost);
      const ours = listed.filter((c) => c.queue.name === QUEUE || c.queue.name === 'notifications.user-events');
      return ours.length >= 2 && ours.every((c) => c.channel_details?.connection_name) && listed;
    });
    const tags = Object.fromEntries(consumers.map((c) => [c.queue.name, c]));
    expect(tags[QUEUE]!.consumer_tag).to.match(new RegExp(`^warren analytics ${host} pid ${analytics.child.pid} #\\d+$`));
    // The channel names the broker's side of the connection (ip:port); the UI shows that connection by its client name.
    const conn = (await sys.management.listConnections(sys.vhost)).find((c) => c.name === tags[QUEUE]!.channel_details.connection_name);
    expect(conn?.client_properties?.connection_name).to.equal(
      `warren worker analytics ${host} pid ${analytics.child.pid} consume on ${nodeLabel(sys.amqpUrl)}`,
    );
    expect(tags['notifications.user-events']!.consumer_tag).to.match(new RegExp(`^warren notifications ${host} pid ${notifications.child.pid} #\\d+$`));
    expect(tags[QUEUE]!.ack_required).to.equal(true);
  });

  it('shows the definitions policies as the effective policy of each queue', async function () {
    const queues = Object.fromEntries((await sys.management.listQueues(sys.vhost)).map((q) => [q.name, q]));
    for (const dlq of [DLQ, 'notifications.user-events.dlq']) {
      expect(queues[dlq]!.policy).to.equal('warren.dlq');
      expect(queues[dlq]!.effective_policy_definition).to.deep.equal({
        'max-length-bytes': 1073741824,
        overflow: 'reject-publish',
        'queue-leader-locator': 'balanced',
      });
      expect(queues[dlq]!.arguments).to.deep.equal({ 'x-queue-type': 'quorum' });
    }
    expect(queues[QUEUE]!.effective_policy_definition).to.deep.include({
      'dead-letter-exchange': 'warren.dlx',
      'dead-letter-routing-key': QUEUE,
      'dead-letter-strategy': 'at-least-once',
      overflow: 'reject-publish',
      'delivery-limit': 20,
    });
    expect(queues['warren.delay.30s']!.effective_policy_definition).to.deep.include({
      'message-ttl': 30000,
      'dead-letter-exchange': 'warren.return',
      'dead-letter-strategy': 'at-least-once',
      overflow: 'reject-publish',
    });
    // Every queue of the definitions is a quorum queue; the API's live-notification queue alone is
    // classic, exclusive and server-named (best effort, one per API process).
    for (const q of Object.values(queues)) {
      if (q.name.startsWith('amq.gen-')) expect([q.type, q.exclusive, q.auto_delete], q.name).to.deep.equal(['classic', true, true]);
      else expect(q.type, q.name).to.equal('quorum');
    }
  });

  it('warren status shows queues, consumers, DLQ counts, the outbox backlog and the timeline instances the API sees', async function () {
    const user = await sys.createUser('opsstatus');
    const tweet = await sys.request('POST', '/tweets', { token: user.token, body: { text: 'status check' } });
    expect(tweet.status).to.equal(201);

    // The management API's figures arrive every few seconds: wait until they show the running system.
    let last: StatusReport | undefined;
    const report = await waitFor('the outbox to be relayed and every consumer counted', async () => {
      const run = await warren('status', '--json');
      expect(run.code, run.stderr).to.equal(0);
      const r = (last = JSON.parse(run.stdout) as StatusReport);
      const consumers = r.queues.filter((q) => q.role === 'work').map((q) => q.consumers);
      return 'backlog' in r.outbox && r.outbox.backlog === 0 && consumers.join() === '1,1,1' && r.dlqs.every((d) => d.parked === 0) && r;
    }).catch((err: Error) => {
      throw new Error(`${err.message}; last report: ${JSON.stringify(last)}`);
    });
    expect(report.vhost).to.equal(sys.vhost);
    expect(report.queues.map((q) => `${q.role} ${q.name}`).slice(0, 6)).to.deep.equal([
      `work ${QUEUE}`,
      'work notifications.user-events',
      'work timeline.events',
      `dlq ${DLQ}`,
      'dlq notifications.user-events.dlq',
      'dlq timeline.events.dlq',
    ]);
    expect(report.dlqs).to.deep.equal([
      { queue: QUEUE, dlq: DLQ, exists: true, parked: 0 },
      { queue: 'notifications.user-events', dlq: 'notifications.user-events.dlq', exists: true, parked: 0 },
      { queue: 'timeline.events', dlq: 'timeline.events.dlq', exists: true, parked: 0 },
    ]);
    expect(report.attention).to.deep.equal([]);

    const text = await warren('status');
    expect(text.code).to.equal(0);
    const lines = text.stdout.split('\n');
    expect(
      lines.some((l) => /^QUEUE\s+ROLE\s+MESSAGES\s+READY\s+UNACKED\s+CONSUMERS\s+PUBLISH\/S\s+DELIVER\/S\s+ACK\/S$/.test(l)),
      lines[0],
    ).to.equal(true);
    expect(lines.find((l) => l.startsWith(`${QUEUE} `))).to.match(/^analytics\.tweets\s+work\s+\d+\s+\d+\s+\d+\s+1\s/);
    expect(text.stdout).to.contain('outbox: 0 event(s) waiting to be relayed');
    expect(text.stdout).to.contain('nothing needs attention');
    // The timeline instance the API calls, as the API sees it.
    expect(timelineInstances(report.api)).to.deep.equal([{ url: sys.timelineUrl, setAside: false }]);
    expect(lines.find((l) => l.startsWith('TIMELINE INSTANCE'))).to.match(/^TIMELINE INSTANCE \(AS THE API SEES IT\)\s+STATE$/);
    expect(lines.find((l) => l.startsWith(`${sys.timelineUrl} `))).to.match(/^http:\/\/127\.0\.0\.1:\d+\s+in service$/);
  });

  it('warren topology check exits 0 on a match and 1 with a diff of every drift', async function () {
    const ok = await warren('topology', 'check');
    expect(ok.code, ok.stdout + ok.stderr).to.equal(0);
    expect(ok.stdout).to.match(new RegExp(`^topology of vhost ${sys.vhost} matches .*definitions\\.json\\n$`));

    const back = (await sys.management.queueBindings(sys.vhost, 'notifications.user-events')).find((b) => b.source === 'warren.return')!;
    await sys.management.deleteBinding(back);
    await sys.management.setPermissions(sys.vhost, 'warren-api', { configure: '.*', write: '.*', read: '.*' });
    try {
      const drift = await warren('topology', 'check');
      expect(drift.code).to.equal(1);
      expect(drift.stdout.split('\n').slice(1, 3)).to.deep.equal([
        '- binding warren.return -> notifications.user-events (key "notifications.user-events") is missing',
        '~ permissions of warren-api: configure is ".*", definitions say "^amq\\\\.gen-.*"',
      ]);
      expect(drift.stdout).to.contain('~ permissions of warren-api: write is ".*"');
    } finally {
      const applied = await warren('topology', 'apply');
      expect(applied.code, applied.stderr).to.equal(0);
    }
    expect((await warren('topology', 'check')).code).to.equal(0);
  });

  it('warren dlq lists, exports, refuses an unconfirmed purge, and replays by error into the running worker', async function () {
    const user = await sys.createUser('opsuser');
    const busy = [await parkTweet(user.id, 'TransientError: database busy'), await parkTweet(user.id, 'TransientError: database busy')];
    const other = await parkTweet(user.id, 'TransientError: handler timed out');
    await waitFor('3 parked', async () => (await sys.queueDepth(DLQ)) === 3);

    const list = await warren('dlq', 'list', QUEUE);
    expect(list.code, list.stderr).to.equal(0);
    const rows = list.stdout.trimEnd().split('\n');
    expect(rows[0]).to.equal(`${DLQ}: 3 parked`);
    expect(rows[1]).to.match(/^MESSAGE ID\s+TYPE\s+KIND\s+ATTEMPTS\s+AGE\s+REASON$/);
    expect(rows.slice(2).map((r) => r.split(/\s+/)[0])).to.deep.equal([...busy, other]);
    expect(rows[2]).to.match(/tweet\.created\s+exhausted\s+2\s+1m\s+TransientError: database busy$/);

    const file = path.join(exportDir, 'parked.json');
    const exported = await warren('dlq', 'export', QUEUE, '--file', file);
    expect(exported.code, exported.stderr).to.equal(0);
    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(doc.count).to.equal(3);
    expect(doc.messages.map((m: { properties: { messageId: string } }) => m.properties.messageId)).to.deep.equal([...busy, other]);
    expect(JSON.parse(doc.messages[0].body)).to.include({ authorId: user.id, text: 'parked #ops' });
    expect(doc.messages[0].properties.headers['x-warren-error']).to.equal('TransientError: database busy');
    expect(fs.statSync(file).mode & 0o777).to.equal(0o600);

    const purge = await warren('dlq', 'purge', QUEUE);
    expect(purge.code).to.equal(2);
    expect(purge.stderr).to.contain('not on a terminal, so run it with --yes');
    const unselected = await warren('dlq', 'replay', QUEUE);
    expect(unselected.code).to.equal(2);
    expect(unselected.stderr).to.contain('--id <messageId>, -n <count>, --error <substring>, or --all');
    expect(await sys.queueDepth(DLQ)).to.equal(3);

    const replay = await warren('dlq', 'replay', QUEUE, '--error', 'database busy');
    expect(replay.code, replay.stderr).to.equal(0);
    expect(replay.stdout).to.equal(`replayed 2, skipped 1, remaining 1 in ${DLQ} (selected: error containing "database busy")\n`);
    // The running worker applies both replayed tweets; the third stays parked.
    await waitFor('the analytics worker to count the replayed tweets', async () => {
      const res = await sys.request('GET', `/analytics/users/${user.id}`);
      return res.status === 200 && res.json.tweetCount === 2;
    });
    const left = await warren('dlq', 'list', QUEUE, '--json');
    expect(
      left.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).messageId),
    ).to.deep.equal([other]);

    const purged = await warren('dlq', 'purge', QUEUE, '--yes');
    expect(purged.stdout).to.equal(`purged 1 message(s) from ${DLQ}\n`);
    expect(await sys.queueDepth(DLQ)).to.equal(0);
  });
});
