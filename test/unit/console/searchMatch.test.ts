/** @file The FTS5 query search asks of the trigram table on SQLite, without a database. */
import { expect } from 'chai';
import { trigramMatch, trigramsOf } from '../../../src/console/searchMatch';

describe('console: the trigram query of a search phrase', function () {
  it('takes each distinct run of three characters, counting code points as FTS5 does', function () {
    expect(trigramsOf('abcd')).to.deep.equal(['abc', 'bcd']);
    expect(trigramsOf('aaaa')).to.deep.equal(['aaa']);
    expect(trigramsOf('a🙂bc')).to.deep.equal(['a🙂b', '🙂bc']);
    expect(trigramsOf('ab')).to.deep.equal([]);
  });

  it('requires every trigram, each a quoted phrase with its quotes doubled, so no character is query syntax', function () {
    expect(trigramMatch('o "x')).to.equal('"o """ AND " ""x"');
    expect(trigramMatch('a OR b')).to.equal('"a O" AND " OR" AND "OR " AND "R b"');
  });

  it('has nothing to ask for a phrase under three characters', function () {
    expect(trigramMatch('ab')).to.equal(undefined);
    expect(trigramMatch('🙂x')).to.equal(undefined);
  });

  it('asks for at most 24 trigrams of a long phrase, spread from its start to its end', function () {
    const phrase = Array.from({ length: 200 }, (_, i) => String.fromCharCode(0x4e00 + i)).join('');
    const terms = trigramMatch(phrase)!.split(' AND ');
    expect(terms).to.have.length(24);
    expect(terms[0]).to.equal(`"${phrase.slice(0, 3)}"`);
    expect(terms[23]).to.equal(`"${phrase.slice(197)}"`);
  });
});
