/** @file Grouping parked messages by normalised reason, pure. */
import { expect } from 'chai';
import { groupByNormalisedReason, normaliseReason } from '../../../src/console/summary';

describe('console: the summary of parked messages', function () {
  it('takes ids, long hex, quoted values and numbers out of a reason', function () {
    expect(normaliseReason('NotFoundError: user 0190f3a2-7b1c-7def-8abc-0123456789ab not found')).to.equal('NotFoundError: user <id> not found');
    expect(normaliseReason('ValidationError: handle "ada_99" taken after 3 tries')).to.equal('ValidationError: handle "…" taken after <n> tries');
    expect(normaliseReason('trace feedfacefeedfacefeedface   timed out\nafter 1.5 s')).to.equal('trace <id> timed out after <n> s');
    expect(normaliseReason(null)).to.equal('(none)');
    expect(normaliseReason('  ')).to.equal('(none)');
  });

  it('adds up the reasons that normalise alike per queue and kind, the largest group first, with its oldest and newest park', function () {
    const groups = groupByNormalisedReason([
      { queue: 'q1', kind: 'permanent', reason: 'user 1 missing', count: 2, oldest: 10, newest: 20 },
      { queue: 'q1', kind: 'permanent', reason: 'user 2 missing', count: 3, oldest: 5, newest: 15 },
      { queue: 'q2', kind: 'permanent', reason: 'user 3 missing', count: 1, oldest: 7, newest: 7 },
      { queue: 'q1', kind: 'crash-loop', reason: 'delivery_limit', count: 4, oldest: 1, newest: 30 },
    ]);
    expect(groups).to.deep.equal([
      { queue: 'q1', kind: 'permanent', reason: 'user <n> missing', count: 5, oldest: 5, newest: 20 },
      { queue: 'q1', kind: 'crash-loop', reason: 'delivery_limit', count: 4, oldest: 1, newest: 30 },
      { queue: 'q2', kind: 'permanent', reason: 'user <n> missing', count: 1, oldest: 7, newest: 7 },
    ]);
  });
});
