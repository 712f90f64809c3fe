import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { projectRoot } from '../../../src/config';
import { loadDefinitions, TopologyError, type Definitions } from '../../../src/topology/definitions';

/**
 * The definitions file is checked as it loads: a permission that would let
 * one service route into, or bind a copy out of, another's queues stops
 * `topology apply` and every start-up check with one line.
 */
describe('definitions: permissions that hold at the broker', function () {
  const file = path.join(projectRoot, 'rabbitmq', 'definitions.json');
  const defs = JSON.parse(fs.readFileSync(file, 'utf8')) as Definitions;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-defs-'));
  const load = (changed: Definitions) => {
    const out = path.join(dir, 'definitions.json');
    fs.writeFileSync(out, JSON.stringify(changed));
    return () => loadDefinitions(out);
  };

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('makes the retry, park and return exchanges topic exchanges, each service limited to its own queue names on them', function () {
    const loaded = loadDefinitions(file);
    for (const name of ['warren.return', 'warren.dlx', 'warren.delay.5s', 'warren.delay.30s', 'warren.delay.2m', 'warren.delay.10m']) {
      expect(loaded.exchanges.find((e) => e.name === name)?.type, name).to.equal('topic');
    }
    for (const [user, queue] of [
      ['warren-analytics', 'analytics.tweets'],
      ['warren-notifications', 'notifications.user-events'],
    ] as const) {
      for (const t of loaded.topic_permissions.filter((p) => p.user === user)) {
        const write = new RegExp(t.write);
        const read = new RegExp(t.read);
        // Its own queue's name at most, never the other's nor a wildcard.
        expect(write.test('notifications.user-events') && write.test('analytics.tweets'), `${user} on ${t.exchange}`).to.equal(false);
        expect(read.test('#') || write.test('#'), `${user} on ${t.exchange}`).to.equal(false);
        expect(write.test(queue) || read.test(queue), `${user} on ${t.exchange}`).to.equal(true);
      }
    }
    expect(loaded.users.find((u) => u.name === 'warren-monitor')?.tags).to.deep.equal(['monitoring']);
    const monitor = loaded.permissions.find((p) => p.user === 'warren-monitor')!;
    expect([monitor.configure, monitor.write, monitor.read]).to.deep.equal(['^$', '^$', '^$']);
  });

  it('refuses a service user who may use a shared exchange without a topic permission on it', function () {
    const without = {
      ...defs,
      topic_permissions: defs.topic_permissions.filter((t) => !(t.user === 'warren-notifications' && t.exchange === 'warren.delay.2m')),
    };
    expect(load(without)).to.throw(TopologyError, /warren-notifications may use warren\.delay\.2m but has no topic permission on it/);
  });

  it('refuses a topic permission on an exchange that is not a topic exchange (RabbitMQ would ignore it)', function () {
    const fanout = { ...defs, exchanges: defs.exchanges.map((e) => (e.name === 'warren.dlx' ? { ...e, type: 'direct' as const } : e)) };
    expect(load(fanout)).to.throw(TopologyError, /warren\.dlx is a direct exchange; RabbitMQ applies topic permissions to topic exchanges only/);
    const unknown = { ...defs, topic_permissions: [...defs.topic_permissions, { ...defs.topic_permissions[0]!, exchange: 'nowhere' }] };
    expect(load(unknown)).to.throw(TopologyError, /exchange nowhere is not defined/);
  });

  it('refuses an administrator or management tag on a service user', function () {
    const admin = { ...defs, users: defs.users.map((u) => (u.name === 'warren-monitor' ? { ...u, tags: ['administrator'] } : u)) } as unknown as Definitions;
    expect(load(admin)).to.throw(TopologyError, /users\.3\.tags\.0: a service user may carry the monitoring tag at most/);
  });
});
