import { expect } from 'chai';
import { extractHashtags } from '../../../src/domain/text';
import { figuresOf, ledgerTag, ledgerTagOf, loadTweetText, miscountedTimelines, timelineBooks, type Books } from '../../faults/support/books';
import { combine, reconcile, someIds } from '../../faults/support/ledger';
import type { LoadFigures } from '../../faults/support/load';

function load(over: Partial<LoadFigures> = {}): LoadFigures {
  return {
    attempted: 3,
    acceptedTweets: 3,
    acceptedProfileChanges: 0,
    refused: {},
    tweetsByUser: new Map(),
    changesByUser: new Map(),
    acceptedTweetIds: [],
    acceptedDisplayNames: [],
    ...over,
  };
}

function books(over: Partial<Books> = {}): Books {
  return {
    tweets: reconcile([], []),
    changes: reconcile([], []),
    timeline: reconcile([], []),
    timelineMiscounted: [],
    committedTweetIds: new Set(),
    committedDisplayNames: new Set(),
    outboxUnsent: 0,
    parked: 0,
    ...over,
  };
}

describe("the fault suite's books", () => {
  it('one id lost and another applied twice report 1 lost and 1 duplicated, not a balance', () => {
    // Three committed, three applications: the totals balance, the ids do not.
    const r = reconcile(['a', 'b', 'c'], ['a', 'a', 'b']);
    expect(r).to.deep.equal({ committed: 3, applied: 2, lost: ['c'], duplicated: ['a'], strays: [] });

    const row = figuresOf('one lost, one doubled', 'test', load(), { books: books({ tweets: r }), settleMs: 0 });
    expect(row.lost).to.deep.equal(['c']);
    expect(row.duplicated).to.deep.equal(['a']);
    expect({ committed: row.committed, applied: row.applied }).to.deep.equal({ committed: 3, applied: 2 });
  });

  it('an id applied three times is one duplicated id; an id nobody committed is a stray, not an application of another', () => {
    const r = reconcile(['a', 'b'], ['a', 'a', 'a', 'b', 'z']);
    expect(r.lost).to.deep.equal([]);
    expect(r.duplicated).to.deep.equal(['a']);
    expect(r.strays).to.deep.equal(['z']);
    expect(r.applied).to.equal(2);
  });

  it('counts an id committed twice once, and balances when each id is applied once', () => {
    expect(reconcile(['a', 'b', 'a'], ['b', 'a'])).to.deep.equal({ committed: 2, applied: 2, lost: [], duplicated: [], strays: [] });
  });

  it('keeps tweets and profile changes apart: the same number lost on one side cannot cancel out the other', () => {
    const all = combine(reconcile(['t1', 't2'], ['t1', 't1']), reconcile(['p1'], ['p1', 'p2']));
    expect(all).to.deep.equal({ committed: 3, applied: 2, lost: ['t2'], duplicated: ['t1'], strays: ['p2'] });
  });

  it('names each accepted write that has no committed event', () => {
    const f = load({ acceptedTweetIds: ['tw1', 'tw2'], acceptedDisplayNames: ['load 1 7'], acceptedProfileChanges: 1 });
    const b = books({ committedTweetIds: new Set(['tw1', 'tw9']), committedDisplayNames: new Set(['load 1 7']) });
    expect(figuresOf('s', 'l', f, { books: b, settleMs: 0 }).acceptedNotCommitted).to.deep.equal(['tweet tw2']);
  });

  it("counts the timeline's tweets by their author's timeline and its profile changes by inbox record; an unknown record is a stray", () => {
    const tweet = (id: string, tweetId: string) => ({ message_id: id, type: 'tweet.created', payload: JSON.stringify({ tweetId, text: 'x' }) });
    const change = (id: string) => ({ message_id: id, type: 'user.updated', payload: '{}' });
    const events = [tweet('m1', 't1'), tweet('m2', 't2'), change('m3'), change('m4')];
    // m2's tweet never reached a timeline, m4 was never recorded; u1 is a user.created (committed, not counted), z nobody's.
    const r = timelineBooks(events, new Set(['m1', 'm2', 'm3', 'm4', 'u1']), new Set(['t1']), new Set(['m1', 'm2', 'm3', 'u1', 'z']));
    expect(r).to.deep.equal({ committed: 4, applied: 2, lost: ['m2', 'm4'], duplicated: [], strays: ['z'] });
  });

  it('names a timeline whose kept size counts more entries than it holds, and the timeline row fails on it', () => {
    const off = miscountedTimelines(
      [
        { user_id: 'u1', entries: 3 },
        { user_id: 'u2', entries: '2' },
        { user_id: 'u3', entries: 1 },
      ],
      [
        { user_id: 'u1', n: 3 },
        { user_id: 'u2', n: '1' },
      ],
    );
    expect(off).to.deep.equal(['timeline of u2 counts 2 entries and holds 1', 'timeline of u3 counts 1 entries and holds 0']);
    const row = figuresOf('s', 'l', load(), { books: books({ timeline: reconcile(['a'], ['a']), timelineMiscounted: off }), settleMs: 0 });
    expect(row.timeline).to.deep.equal({ applied: 1, lost: [], duplicated: off, strays: [] });
  });

  it('gives each tweet of a load a tag of its own, in lower case (tags are case-folded)', () => {
    expect(ledgerTag('Ab12cd', 7)).to.equal('ledgerab12cdx7');
    expect(ledgerTag('ab12cd', 1)).to.not.equal(ledgerTag('ab12cd', 11));
    expect(someIds(['a', 'b', 'c'], 2)).to.equal('a, b and 1 more');
  });

  it("reads a load tweet's ledger tag back from its text, as the tag analytics counts", () => {
    for (const i of [0, 7, 11, 1499]) {
      const text = loadTweetText('k3x9qz', i);
      expect(ledgerTagOf(text)).to.equal(ledgerTag('k3x9qz', i));
      expect(extractHashtags(text), 'the tag analytics stores').to.include(ledgerTag('k3x9qz', i));
    }
    expect(ledgerTagOf('no tag #fault3')).to.equal(undefined);
  });
});
