import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { projectRoot } from '../../src/config';
import { loadConfig } from '../../src/services';
import { createLogger } from '../../src/log';
import { formatDrift } from '../../src/topology/drift';
import { ManagementClient } from '../../src/topology/management';
import { allNames, apiNeeds, applyTopology, delaySteps, loadDefinitions, queuesNeededBy, TopologyError } from '../../src/topology/definitions';
import { checkTopology, findDrift, type CheckTopologyOptions } from '../../src/topology/check';
import { amqpUrlFor, waitFor } from '../support/system';

const config = loadConfig({ ...process.env, NODE_ENV: 'test' });
const managementUrl = config.amqp.managementUrl;
const defs = loadDefinitions(path.join(projectRoot, 'rabbitmq', 'definitions.json'));
const log = createLogger('topology-test', 'silent');

/** The check's one-line message; fails the test if the check passes. */
async function checkFails(opts: CheckTopologyOptions): Promise<string> {
  try {
    await checkTopology(opts);
  } catch (err) {
    expect(err).to.be.instanceOf(TopologyError);
    const message = (err as Error).message;
    expect(message).not.to.contain('\n');
    return message;
  }
  throw new Error('topology check passed, expected it to fail');
}

describe('broker topology (integration)', function () {
  const vhost = `warren-test-${crypto.randomBytes(6).toString('hex')}`;
  const api = new ManagementClient(managementUrl);
  const base = { managementUrl, vhost, defs };
  const analytics = { ...base, ...queuesNeededBy('analytics.tweets', defs) };

  before(async function () {
    await applyTopology({ ...base, log });
  });

  after(async function () {
    await api.deleteVhost(vhost);
  });

  it('passes the check once applied, for everything, each worker and the API', async function () {
    await checkTopology({ ...base, ...allNames(defs), amqpUrl: amqpUrlFor(vhost) });
    await checkTopology(analytics);
    await checkTopology({ ...base, ...queuesNeededBy('notifications.user-events', defs) });
    await checkTopology({ ...base, ...apiNeeds(defs) });
  });

  it('lists the delay steps shortest first, TTLs from the policies', function () {
    expect(delaySteps(defs)).to.deep.equal([
      { name: '5s', exchange: 'warren.delay.5s', queue: 'warren.delay.5s', ttlMs: 5000 },
      { name: '30s', exchange: 'warren.delay.30s', queue: 'warren.delay.30s', ttlMs: 30000 },
      { name: '2m', exchange: 'warren.delay.2m', queue: 'warren.delay.2m', ttlMs: 120000 },
      { name: '10m', exchange: 'warren.delay.10m', queue: 'warren.delay.10m', ttlMs: 600000 },
    ]);
  });

  it('names what a worker and the API need', function () {
    const needs = queuesNeededBy('analytics.tweets', defs);
    expect(needs.queues).to.have.members([
      'analytics.tweets',
      'analytics.tweets.dlq',
      'warren.delay.5s',
      'warren.delay.30s',
      'warren.delay.2m',
      'warren.delay.10m',
    ]);
    expect(needs.exchanges).to.have.members(['warren.delay.5s', 'warren.delay.30s', 'warren.delay.2m', 'warren.delay.10m', 'warren.return', 'warren.dlx']);
    expect(apiNeeds(defs)).to.deep.equal({ queues: [], exchanges: ['tweets', 'user.events', 'notifications.live'] });
    expect(() => queuesNeededBy('no.such.queue', defs)).to.throw(TopologyError, /no\.such\.queue/);
  });

  it('names a deleted binding, and apply puts it back', async function () {
    const bindings = await api.queueBindings(vhost, 'analytics.tweets');
    const back = bindings.find((b) => b.source === 'warren.return');
    expect(back, 'warren.return binding').to.exist;
    await api.deleteBinding(back!);

    const message = await checkFails(analytics);
    expect(message).to.contain('binding warren.return -> analytics.tweets (key "analytics.tweets") is missing');

    await applyTopology({ ...base, log });
    await checkTopology(analytics);
  });

  it('names a delay queue whose effective policy lost reject-publish', async function () {
    await api.putPolicy(vhost, 'test.override', {
      pattern: '^warren\\.delay\\.5s$',
      'apply-to': 'queues',
      priority: 20,
      definition: { 'message-ttl': 5000, 'dead-letter-exchange': 'warren.return', 'dead-letter-strategy': 'at-least-once' },
    });
    try {
      await waitFor('the override policy to take effect', async () => (await api.getQueue(vhost, 'warren.delay.5s'))?.policy === 'test.override');
      const message = await checkFails(analytics);
      expect(message).to.match(/queue warren\.delay\.5s: overflow is drop-head, not reject-publish \(effective policy test\.override\)/);
      expect(message).to.contain('retries could be lost');
    } finally {
      await api.deletePolicy(vhost, 'test.override');
      await waitFor('the definitions policy to be back', async () => (await api.getQueue(vhost, 'warren.delay.5s'))?.policy === 'warren.delay.5s');
    }
    await checkTopology(analytics);
  });

  it('names a delay queue that dead-letters at-most-once', async function () {
    await api.putPolicy(vhost, 'test.at-most-once', {
      pattern: '^warren\\.delay\\.30s$',
      'apply-to': 'queues',
      priority: 20,
      definition: { 'message-ttl': 30000, 'dead-letter-exchange': 'warren.return' },
    });
    try {
      await waitFor('the override policy to take effect', async () => (await api.getQueue(vhost, 'warren.delay.30s'))?.policy === 'test.at-most-once');
      const message = await checkFails(analytics);
      expect(message).to.contain(
        'queue warren.delay.30s: dead-letter-strategy is at-most-once (effective policy test.at-most-once lost at-least-once); retries could be lost',
      );
    } finally {
      await api.deletePolicy(vhost, 'test.at-most-once');
      await waitFor('the definitions policy to be back', async () => (await api.getQueue(vhost, 'warren.delay.30s'))?.policy === 'warren.delay.30s');
    }
  });

  it('names a missing queue, and apply recreates it', async function () {
    await api.deleteQueue(vhost, 'analytics.tweets.dlq');
    const message = await checkFails(analytics);
    expect(message).to.contain('queue analytics.tweets.dlq is missing');

    await applyTopology({ ...base, log });
    await checkTopology(analytics);
  });

  it('applies twice without changing anything', async function () {
    const before = await Promise.all(defs.queues.map((q) => api.queueBindings(vhost, q.name)));
    await applyTopology({ ...base, log });
    const after = await Promise.all(defs.queues.map((q) => api.queueBindings(vhost, q.name)));
    expect(after).to.deep.equal(before);
    expect((await api.listQueues(vhost)).map((q) => q.name)).to.have.members(defs.queues.map((q) => q.name));
    await checkTopology({ ...base, ...allNames(defs) });
  });

  it('lists every drift at once for `warren topology check`, missing first, and apply repairs what it declares', async function () {
    const full = { ...base, ...allNames(defs), full: true };
    expect(await findDrift(full)).to.deep.equal([]);
    await api.deleteExchange(vhost, 'notifications.live');
    await api.setPermissions(vhost, 'warren-analytics', { configure: '^$', write: '.*', read: '^(analytics\\.tweets|tweets|warren\\.return)$' });
    await api.putBinding(vhost, { source: 'tweets', destination: 'analytics.tweets', destination_type: 'queue', routing_key: '#', arguments: {} });
    await api.putPolicy(vhost, 'test.extra', { pattern: '^nothing$', 'apply-to': 'queues', priority: 0, definition: { 'message-ttl': 1 } });
    try {
      const drift = await findDrift(full);
      expect(drift).to.deep.equal([
        { kind: 'missing', text: 'exchange notifications.live is missing' },
        {
          kind: 'differs',
          text: 'permissions of warren-analytics: write is ".*", definitions say "^(analytics\\\\.tweets|warren\\\\.delay\\\\..+|warren\\\\.dlx)$"',
        },
        { kind: 'extra', text: 'binding tweets -> analytics.tweets (key "#") is not in the definitions' },
        { kind: 'extra', text: 'policy test.extra (pattern "^nothing$", priority 0, {"message-ttl":1}) is not in the definitions' },
      ]);
      expect(
        formatDrift(drift)
          .split('\n')
          .map((l) => l[0]),
      ).to.deep.equal(['-', '~', '+', '+']);
      // A start-up check of the analytics worker sees none of it: it only needs its own queues.
      await checkTopology(analytics);
    } finally {
      await applyTopology({ ...base, log });
      const extra = (await api.queueBindings(vhost, 'analytics.tweets')).find((b) => b.routing_key === '#');
      if (extra) await api.deleteBinding(extra);
      await api.deletePolicy(vhost, 'test.extra');
    }
    expect(await findDrift(full)).to.deep.equal([]);
  });

  it('re-declares a retry or park exchange an older deployment made direct or fanout, with its bindings and topic permissions', async function () {
    // As an older deployment left them: warren.return direct, warren.delay.5s fanout bound with an empty key.
    await api.deleteExchange(vhost, 'warren.return');
    await api.putExchange(vhost, 'warren.return', { type: 'direct', durable: true, auto_delete: false, internal: false, arguments: {} });
    await api.putBinding(vhost, {
      source: 'warren.return',
      destination: 'analytics.tweets',
      destination_type: 'queue',
      routing_key: 'analytics.tweets',
      arguments: {},
    });
    await api.deleteExchange(vhost, 'warren.delay.5s');
    await api.putExchange(vhost, 'warren.delay.5s', { type: 'fanout', durable: true, auto_delete: false, internal: false, arguments: {} });
    await api.putBinding(vhost, { source: 'warren.delay.5s', destination: 'warren.delay.5s', destination_type: 'queue', routing_key: '', arguments: {} });
    const message = await checkFails(analytics);
    expect(message).to.contain('exchange warren.delay.5s is fanout, definitions say topic');

    await applyTopology({ ...base, log });
    expect((await api.getExchange(vhost, 'warren.return'))?.type).to.equal('topic');
    expect((await api.getExchange(vhost, 'warren.delay.5s'))?.type).to.equal('topic');
    const keys = (await api.queueBindings(vhost, 'warren.delay.5s')).filter((b) => b.source === 'warren.delay.5s').map((b) => b.routing_key);
    expect(keys).to.deep.equal(['#']);
    expect(await findDrift({ ...base, ...allNames(defs), full: true })).to.deep.equal([]);
    const topic = await api.listTopicPermissions(vhost, 'warren-analytics');
    expect(topic.find((t) => t.exchange === 'warren.return')).to.include({ write: '^$', read: '^analytics\\.tweets$' });
  });

  it('names a vhost that does not exist', async function () {
    const message = await checkFails({ ...analytics, vhost: `${vhost}-missing` });
    expect(message).to.contain(`vhost ${vhost}-missing does not exist`);
  });

  it('rejects a definitions file whose binding names an undefined queue', function () {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'warren-defs-')), 'definitions.json');
    const broken = { ...defs, bindings: [...defs.bindings, { ...defs.bindings[0]!, destination: 'nowhere' }] };
    fs.writeFileSync(file, JSON.stringify(broken));
    expect(() => loadDefinitions(file)).to.throw(TopologyError, new RegExp(`bindings\\.${defs.bindings.length}\\.destination: queue nowhere is not defined`));
  });
});
