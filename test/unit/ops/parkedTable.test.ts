import { expect } from 'chai';
import type { ParkedMessage } from '../../../src/ops/dlq';
import { parkedTable } from '../../../src/console/dlqCommands';
import { renderTable } from '../../../src/ops/table';

const now = Date.parse('2026-01-01T12:00:00Z');

function parked(messageId: string | null, over: Partial<ParkedMessage> = {}): ParkedMessage {
  return { messageId, type: 'tweet.created', reason: 'PermanentError: bad body', kind: 'permanent', attempts: 1, firstFailure: null, lastFailure: '2026-01-01T11:59:00Z', originalQueue: 'analytics.tweets', ...over };
}

/** `warren dlq list` stays readable whatever ids and types another publisher chose. */
describe('operator output: the parked-message table', function () {
  it('a 200-character message id widens no row: it is cut in its middle, keeping both ends', function () {
    const uuid = '0192f3a1-7c2d-7e4f-8a9b-0c1d2e3f4a5b';
    const long = `start-${'x'.repeat(188)}-end00`;
    expect(long).to.have.length(200);
    const lines = parkedTable([parked(uuid), parked(long)], now).split('\n');
    const widths = lines.map((l) => Array.from(l).length);
    // Every row as wide as the one with a plain UUID: the long id did not widen the table.
    const withUuidOnly = parkedTable([parked(uuid)], now).split('\n');
    expect(Math.max(...widths)).to.equal(Math.max(...withUuidOnly.map((l) => l.length)));
    expect(lines[1]!.startsWith(`${uuid}  `)).to.equal(true);
    const cell = lines[2]!.split('  ')[0]!;
    expect(Array.from(cell)).to.have.length(36);
    expect(cell).to.match(/^start-x+…x+-end00$/);
  });

  it('cuts a long type at its end and keeps control characters out of the terminal', function () {
    const table = parkedTable([parked('id-\u001b[2J-\r\nx', { type: `t.${'y'.repeat(80)}`, reason: 'bad\u0007 \u202ereversed' })], now);
    const row = table.split('\n')[1]!;
    expect(row).to.not.match(/[\u0000-\u001f\u007f-\u009f\u202e]/);
    expect(row).to.contain('id-?[2J- x');
    expect(row).to.contain(`t.${'y'.repeat(21)}…`);
    expect(row).to.contain('bad? ?reversed');
  });

  it('counts width in code points, so a cut never splits a surrogate pair', function () {
    const text = renderTable([{ title: 'ID', maxWidth: 5, ellipsis: 'middle' }, { title: 'N', align: 'right' }], [['😀😀😀😀😀😀😀', '1']]);
    expect(text.split('\n')).to.deep.equal(['ID     N', '😀😀…😀😀  1']);
  });
});
