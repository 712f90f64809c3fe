/** @file The fault suite's stall arithmetic: the longest stretch a sampled counter did not move. */
import { expect } from 'chai';
import { firstRiseAfter, longestStill } from '../../faults/support/progress';

describe('fault figures: stalls of a sampled counter', () => {
  it('finds the longest stretch without a rise inside the window, the window edges included', () => {
    const rises = [1000, 1200, 1400, 4400, 4600, 9000];
    expect(longestStill(rises, 1000, 5000)).to.deep.equal({ ms: 3000, endedAt: 4400 });
    // Rises before the window do not count; a counter that stopped for good stalls until the window ends.
    expect(longestStill(rises, 4500, 8000)).to.deep.equal({ ms: 3400, endedAt: 8000 });
    expect(longestStill([], 0, 2500)).to.deep.equal({ ms: 2500, endedAt: 2500 });
  });

  it('finds when a counter first moved after a moment, or that it never did', () => {
    expect(firstRiseAfter([100, 200, 900], 200)).to.equal(900);
    expect(firstRiseAfter([100, 200], 500)).to.equal(undefined);
  });
});
