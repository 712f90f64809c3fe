/** @file
 * Quorum queues on a cluster, without a broker: the member count
 * `topology apply` declares, what `topology check` says of a queue's
 * members, and how `warren status` shows leaders and members.
 */
import path from 'node:path';
import { expect } from 'chai';
import { projectRoot } from '../../../src/config';
import { declaredArguments, GROUP_SIZE_ARGUMENT, loadDefinitions, quorumGroupSize, shapeProblems } from '../../../src/topology/definitions';
import { formatDrift, memberDrift } from '../../../src/topology/drift';
import type { QueueInfo } from '../../../src/topology/management';
import { attentionFor, queueStatus, renderStatus, type StatusReport } from '../../../src/ops/status';

const defs = loadDefinitions(path.join(projectRoot, 'rabbitmq', 'definitions.json'));
const work = defs.queues.find((q) => q.name === 'analytics.tweets')!;
const three = ['c1@localhost', 'c2@localhost', 'c3@localhost'];

function quorum(name: string, extra: Partial<QueueInfo> = {}): QueueInfo {
  return { name, vhost: 'warren', type: 'quorum', durable: true, auto_delete: false, arguments: { 'x-queue-type': 'quorum' }, ...extra };
}

describe('quorum queues on a cluster', () => {
  it('gives a quorum queue one member per running node, three at most', () => {
    expect([0, 1, 2, 3, 5].map(quorumGroupSize)).to.deep.equal([1, 1, 2, 3, 3]);
  });

  it('declares a new quorum queue with the cluster size, and none on a single node (as before)', () => {
    expect(declaredArguments(work, undefined, 3)).to.deep.equal({ 'x-queue-type': 'quorum', [GROUP_SIZE_ARGUMENT]: 3 });
    expect(declaredArguments(work, undefined, 5)).to.deep.equal({ 'x-queue-type': 'quorum', [GROUP_SIZE_ARGUMENT]: 3 });
    expect(declaredArguments(work, undefined, 2)).to.deep.equal({ 'x-queue-type': 'quorum', [GROUP_SIZE_ARGUMENT]: 2 });
    expect(declaredArguments(work, undefined, 1)).to.deep.equal({ 'x-queue-type': 'quorum' });
  });

  it('re-declares a queue that exists with the member count it has (the broker refuses another)', () => {
    const declaredForOne = quorum(work.name, { arguments: { 'x-queue-type': 'quorum', [GROUP_SIZE_ARGUMENT]: 1 } });
    expect(declaredArguments(work, declaredForOne, 3)).to.deep.equal({ 'x-queue-type': 'quorum', [GROUP_SIZE_ARGUMENT]: 1 });
    expect(declaredArguments(work, quorum(work.name), 3), 'declared without one').to.deep.equal({ 'x-queue-type': 'quorum' });
    const classic = { name: 'x', vhost: 'warren', durable: true, auto_delete: false, arguments: {} };
    expect(declaredArguments(classic, undefined, 3), 'not a quorum queue').to.deep.equal({});
  });

  it('does not count the member count as an argument the definitions lack, but any other argument still', () => {
    const live = quorum(work.name, { arguments: { 'x-queue-type': 'quorum', [GROUP_SIZE_ARGUMENT]: 3 } });
    expect(shapeProblems(live, defs)).to.deep.equal([]);
    const tunable = quorum(work.name, { arguments: { 'x-queue-type': 'quorum', [GROUP_SIZE_ARGUMENT]: 3, 'x-max-length': 10 } });
    expect(shapeProblems(tunable, defs)).to.deep.equal([
      'queue analytics.tweets: has argument x-max-length=10 the definitions do not (tunables belong in policies)',
    ]);
  });

  it('reports a queue with fewer members than the cluster asks for, all on one node, or on a node the cluster does not know', () => {
    expect(memberDrift(quorum('a', { members: three }), three)).to.deep.equal([]);
    expect(memberDrift(quorum('a', { members: ['rabbit@localhost'] }), ['rabbit@localhost']), 'a single node').to.deep.equal([]);
    expect(memberDrift(quorum('a', { members: ['c1@localhost', 'c2@localhost'] }), ['c1@localhost', 'c2@localhost']), 'two nodes, two members').to.deep.equal(
      [],
    );
    expect(formatDrift(memberDrift(quorum('a', { members: ['c1@localhost'] }), three))).to.equal(
      '~ queue a has its only member on c1@localhost, in a cluster of 3 nodes: it stops with that node (rabbitmq-queues grow <node> all adds the missing members)',
    );
    expect(formatDrift(memberDrift(quorum('a', { members: ['c1@localhost', 'c3@localhost'] }), three))).to.equal(
      '~ queue a has 2 member(s) (c1@localhost, c3@localhost); a cluster of 3 nodes asks for 3 (rabbitmq-queues grow <node> all adds the missing members)',
    );
    expect(formatDrift(memberDrift(quorum('a', { members: ['c1@localhost', 'c2@localhost', 'c9@localhost'] }), three))).to.equal(
      '~ queue a has a member on c9@localhost, which is not a node of the cluster (rabbitmq-queues shrink c9@localhost)',
    );
    const classic = { ...quorum('live'), type: 'classic', members: undefined };
    expect(memberDrift(classic, three), 'a classic queue has no members').to.deep.equal([]);
  });

  it('shows each queue’s leader and members once they span nodes, and a member down as needing attention', () => {
    const queues = [
      queueStatus(quorum('analytics.tweets', { leader: 'c2@localhost', members: three, online: ['c1@localhost', 'c2@localhost'], messages: 0, consumers: 2 }), [
        'analytics.tweets',
      ]),
      queueStatus(quorum('analytics.tweets.dlq', { leader: 'c1@localhost', members: three, online: ['c1@localhost'], messages: 0, consumers: 0 }), [
        'analytics.tweets',
      ]),
    ];
    expect(queues[0]).to.include({ leader: 'c2@localhost' });
    expect(queues[0]!.members).to.deep.equal(three);
    const base: Omit<StatusReport, 'attention'> = {
      vhost: 'warren',
      at: '2026-01-01T12:00:00.000Z',
      queues,
      dlqs: [],
      outbox: { backlog: 0, maxBacklog: 100 },
    };
    const report = { ...base, attention: attentionFor(base) };
    expect(report.attention).to.deep.equal([
      'analytics.tweets: member(s) c3@localhost down, 2 of 3 up; it still has a majority',
      'analytics.tweets.dlq: member(s) c2@localhost, c3@localhost down, 1 of 3 up; no majority: it refuses publishes and deliveries until they are back',
    ]);
    const lines = renderStatus(report).split('\n');
    expect(lines).to.include('QUEUE                 LEADER        MEMBERS                                 DOWN');
    expect(lines).to.include('analytics.tweets      c2@localhost  c1@localhost c2@localhost c3@localhost  c3@localhost');

    // A single broker: one member each, no member table, as before.
    const single = [queueStatus(quorum('analytics.tweets', { leader: 'rabbit@h', members: ['rabbit@h'], online: ['rabbit@h'] }), ['analytics.tweets'])];
    const alone = { ...base, queues: single };
    expect(renderStatus({ ...alone, attention: attentionFor(alone) })).not.to.match(/LEADER/);
  });
});
