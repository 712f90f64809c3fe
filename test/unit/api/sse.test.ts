import { expect } from 'chai';
import { formatComment, formatEvent, formatRetry } from '../../../src/api/sse';

describe('SSE formatting', () => {
  it('writes id, event and data lines and ends the event with a blank line', () => {
    expect(formatEvent({ id: '0192a', event: 'notification', data: '{"a":1}' })).to.equal('id: 0192a\nevent: notification\ndata: {"a":1}\n\n');
  });

  it('splits data at every kind of line break, so a value never starts a new field', () => {
    expect(formatEvent({ data: 'one\ntwo\r\nthree\rid: 4' })).to.equal('data: one\ndata: two\ndata: three\ndata: id: 4\n\n');
  });

  it('writes an empty data line for empty data (an event is dispatched only with data)', () => {
    expect(formatEvent({ data: '' })).to.equal('data: \n\n');
  });

  it('refuses a line break in the id or the event name, and NUL in the id', () => {
    expect(() => formatEvent({ id: 'a\nb', data: 'x' })).to.throw(/line break/);
    expect(() => formatEvent({ event: 'a\rb', data: 'x' })).to.throw(/line break/);
    expect(() => formatEvent({ id: 'a\0b', data: 'x' })).to.throw(/NUL/);
  });

  it('writes comments one line each, and the retry field in whole milliseconds', () => {
    expect(formatComment('heartbeat')).to.equal(': heartbeat\n\n');
    expect(formatComment('a\nb')).to.equal(': a\n: b\n\n');
    expect(formatRetry(2000.7)).to.equal('retry: 2000\n\n');
  });

  it('keeps a JSON notification on one data line (JSON escapes line breaks)', () => {
    const data = JSON.stringify({ text: 'line\none\u2028two' });
    expect(
      formatEvent({ id: 'x', data })
        .split('\n')
        .filter((l) => l.startsWith('data: ')),
    ).to.have.length(1);
  });
});
