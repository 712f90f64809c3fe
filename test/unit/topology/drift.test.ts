import path from 'node:path';
import { expect } from 'chai';
import { projectRoot } from '../../../src/config';
import { bindingDrift, destinationKey, formatDrift, permissionDrift, policyDrift, topicPermissionDrift } from '../../../src/topology/drift';
import type { BindingInfo, PolicyInfo } from '../../../src/topology/management';
import { loadDefinitions } from '../../../src/topology/definitions';

/** How `warren topology check` words each difference, without a broker. */
describe('topology drift', function () {
  const defs = loadDefinitions(path.join(projectRoot, 'rabbitmq', 'definitions.json'));
  const asLive = (b: (typeof defs.bindings)[number]): BindingInfo => ({ ...b, properties_key: b.routing_key || '~' });

  it('finds no drift in the definitions themselves, whatever order the broker lists keys in', function () {
    const live: PolicyInfo[] = defs.policies.map((p) => ({
      ...p,
      // The broker answers with its own key order.
      definition: Object.fromEntries(Object.entries(p.definition).reverse()),
    }));
    expect(policyDrift(defs, live)).to.deep.equal([]);
    const all = new Set(defs.bindings.map((b) => destinationKey(b.destination_type, b.destination)));
    expect(bindingDrift(defs, defs.bindings.map(asLive), all, true)).to.deep.equal([]);
  });

  it('names a missing, a changed and an undeclared policy', function () {
    const live: PolicyInfo[] = defs.policies
      .filter((p) => p.name !== 'warren.delay.2m')
      .map((p) => (p.name === 'warren.dlq' ? { ...p, definition: { 'max-length-bytes': 1073741824, overflow: 'drop-head' } } : p));
    live.push({ vhost: 'warren', name: 'ops.ttl', pattern: '.*', 'apply-to': 'queues', priority: 0, definition: { 'message-ttl': 60000 } });
    expect(formatDrift(policyDrift(defs, live)).split('\n')).to.deep.equal([
      '- policy warren.delay.2m is missing',
      '~ policy warren.dlq has definition {"max-length-bytes":1073741824,"overflow":"drop-head"}, definitions say {"max-length-bytes":1073741824,"overflow":"reject-publish","queue-leader-locator":"balanced"}',
      '+ policy ops.ttl (pattern ".*", priority 0, {"message-ttl":60000}) is not in the definitions',
    ]);
  });

  it('names missing and different permissions, each regex on its own line', function () {
    const def = defs.permissions.find((p) => p.user === 'warren-analytics')!;
    expect(permissionDrift(def, undefined)).to.deep.equal([{ kind: 'missing', text: 'permissions of warren-analytics on vhost warren are missing' }]);
    expect(permissionDrift(def, { ...def, configure: '.*', read: '.*' }).map((d) => d.text)).to.deep.equal([
      'permissions of warren-analytics: configure is ".*", definitions say "^$"',
      'permissions of warren-analytics: read is ".*", definitions say "^(analytics\\\\.tweets|tweets|warren\\\\.return)$"',
    ]);
  });

  it('tells a queue from an exchange of the same name, and ignores the default exchange', function () {
    const live = defs.bindings.filter((b) => b.destination !== 'warren.delay.5s').map(asLive);
    live.push({
      source: '',
      vhost: 'warren',
      destination: 'warren.delay.5s',
      destination_type: 'queue',
      routing_key: 'warren.delay.5s',
      arguments: {},
      properties_key: 'warren.delay.5s',
    });
    expect(bindingDrift(defs, live, new Set([destinationKey('exchange', 'warren.delay.5s')]), true)).to.deep.equal([]);
    expect(bindingDrift(defs, live, new Set([destinationKey('queue', 'warren.delay.5s')]), true)).to.deep.equal([
      { kind: 'missing', text: 'binding warren.delay.5s -> warren.delay.5s (key "#") is missing' },
    ]);
  });

  it('names missing, different and undeclared topic permissions of a user', function () {
    const own = defs.topic_permissions.filter((t) => t.user === 'warren-analytics');
    expect(own.map((t) => t.exchange)).to.have.members([
      'warren.delay.5s',
      'warren.delay.30s',
      'warren.delay.2m',
      'warren.delay.10m',
      'warren.dlx',
      'warren.return',
    ]);
    expect(topicPermissionDrift('warren-analytics', own, own)).to.deep.equal([]);
    const live = own
      .filter((t) => t.exchange !== 'warren.dlx')
      .map((t) => (t.exchange === 'warren.return' ? { ...t, read: '.*' } : t))
      .concat([{ user: 'warren-analytics', vhost: 'warren', exchange: 'tweets', write: '.*', read: '.*' }]);
    expect(formatDrift(topicPermissionDrift('warren-analytics', own, live)).split('\n')).to.deep.equal([
      '- topic permissions of warren-analytics on exchange warren.dlx are missing',
      '~ topic permissions of warren-analytics on exchange warren.return: read is ".*", definitions say "^analytics\\\\.tweets$"',
      '+ topic permissions of warren-analytics on exchange tweets are not in the definitions',
    ]);
  });
});
