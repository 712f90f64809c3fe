import { expect } from 'chai';
import { checkTweetText, countGraphemes, extractHashtags, extractMentions } from '../../../src/domain/text';

describe('tweet text', () => {
  it('counts characters as a person does', () => {
    expect(countGraphemes('🇫🇷')).to.equal(1);
    expect(countGraphemes('👨‍👩‍👧')).to.equal(1);
    expect(countGraphemes('e\u0301')).to.equal(1);
  });

  it('accepts 280 flags and refuses 281', () => {
    expect(checkTweetText('🇫🇷'.repeat(280)).ok).to.equal(true);
    expect(checkTweetText('🇫🇷'.repeat(281)).ok).to.equal(false);
  });

  it('counts at the boundary of 280 code units exactly as it counts beyond it', () => {
    expect(checkTweetText('a'.repeat(280)).ok).to.equal(true);
    expect(checkTweetText('a'.repeat(281)).ok).to.equal(false);
    // 281 code units, 141 characters (a letter and a combining accent each, no NFC form for x + U+0301).
    expect(checkTweetText('x\u0301'.repeat(140) + 'x').ok).to.equal(true);
    // 279 letters and an emoji of two units: 281 units, 280 characters.
    expect(checkTweetText('a'.repeat(279) + '👋').ok).to.equal(true);
    expect(checkTweetText('a'.repeat(280) + '👋').ok).to.equal(false);
  });

  it('normalises to NFC', () => {
    const r = checkTweetText('e\u0301');
    expect(r.ok && r.text).to.equal('\u00e9');
  });

  it('refuses empty text and text over the byte cap', () => {
    expect(checkTweetText('   ').ok).to.equal(false);
    // 140 characters of a letter with 30 combining accents each: ~8,400 UTF-8 bytes.
    const heavy = checkTweetText(('a' + '\u0301'.repeat(30)).repeat(140));
    expect(heavy.ok).to.equal(false);
    if (!heavy.ok) expect(heavy.message).to.match(/bytes/);
  });

  it('extracts case-folded hashtags and mentions once each', () => {
    expect(extractHashtags('#Node and #node, also #TS!')).to.deep.equal(['node', 'ts']);
    expect(extractMentions('hi @Ada and @ada and @bo')).to.deep.equal(['ada']);
    expect(extractHashtags('a#b is not a tag')).to.deep.equal([]);
  });
});
