import { createRequire } from 'node:module';
import { expect } from 'chai';
import { boundForeignHeaders, foreignHeaderProblem, MAX_FOREIGN_HEADER_BYTES, measureHeader, trustedHeaders } from '../../../src/consume/foreignHeaders';
import { decodeFieldTable, Int64Header, installInt64Headers } from '../../../src/broker/int64';
import { failureHeaders } from '../../../src/consume/retry';
import { encodeTable, nestedTable } from '../../support/rawAmqp';

installInt64Headers();

// amqplib's own table codec, the one that encodes copies (internal, untyped); deliveries' headers are decoded by decodeFieldTable.
const codec = createRequire(require.resolve('amqplib'))('./lib/codec.js') as {
  encodeTable(buf: Buffer, table: Record<string, unknown>, offset: number): number;
};
/** A header table as a delivery of those bytes reaches a consumer. */
const decoded = (table: Parameters<typeof encodeTable>[0]) => decodeFieldTable(encodeTable(table).subarray(4));
/** Encodes as a copy of a delivery is encoded; throws as amqplib throws. */
const reencode = (headers: Record<string, unknown>) => codec.encodeTable(Buffer.alloc(65_536), headers, 0);

const rec = {
  error: new Error('bad'),
  attempt: 1,
  queue: 'analytics.tweets',
  exchange: 'tweets',
  routingKey: 'tweet.created',
  now: new Date('2026-12-03T00:00:00Z'),
};

describe('foreign headers', () => {
  it('measures a header nested 3,000 levels deep without overflowing the stack, which re-encoding it does', () => {
    const headers = decoded({ deep: nestedTable(3000), traceparent: 't' });
    expect(() => reencode(headers)).to.throw(RangeError, /call stack/);
    const m = measureHeader(headers.deep, MAX_FOREIGN_HEADER_BYTES);
    expect(m.problem).to.equal('is nested more than 16 levels deep');
    expect(foreignHeaderProblem(headers)).to.equal('header "deep" is nested more than 16 levels deep');
  });

  it('measures what amqplib encodes, byte for byte, for the types a delivery decodes to', () => {
    const headers = decoded({
      s: 'text',
      n: 7,
      d: 1.5,
      b: true,
      x: Buffer.from('raw'),
      a: ['one', 2, { three: 3 }],
      t: { nested: { again: 'x' } },
      l: 2n ** 62n + 1n,
    });
    const size = reencode(headers) - 4;
    const counted = Object.entries(headers).reduce((sum, [k, v]) => sum + 1 + k.length + measureHeader(v, MAX_FOREIGN_HEADER_BYTES).bytes, 0);
    expect(counted).to.equal(size);
  });

  it('keeps headers within the bounds and drops, naming each, those too deep, too large or not encodable', () => {
    const headers = decoded({ fine: 'f', deep: nestedTable(17), huge: 'h'.repeat(MAX_FOREIGN_HEADER_BYTES), bang: { '!': 'bogus' }, ok16: nestedTable(16) });
    expect(() => reencode({ bang: headers.bang })).to.throw(TypeError);
    const { kept, dropped } = boundForeignHeaders(headers);
    expect(Object.keys(kept)).to.deep.equal(['fine', 'ok16']);
    expect(dropped).to.deep.equal([
      { name: 'deep', why: 'is nested more than 16 levels deep' },
      { name: 'huge', why: `is larger than ${MAX_FOREIGN_HEADER_BYTES} bytes` },
      { name: 'bang', why: 'holds a table with a "!" field that is not a timestamp or a decimal' },
    ]);
    expect(() => reencode(kept)).to.not.throw();
  });

  it('drops the headers that would take the total past the bound, in order', () => {
    const half = 'h'.repeat(MAX_FOREIGN_HEADER_BYTES / 2);
    const { kept, dropped } = boundForeignHeaders({ a: half, b: half, c: 'small' });
    expect(Object.keys(kept)).to.deep.equal(['a', 'c']);
    expect(dropped).to.deep.equal([{ name: 'b', why: `takes the headers past ${MAX_FOREIGN_HEADER_BYTES} bytes` }]);
  });

  it('refuses numbers amqplib cannot encode again (a decoded NaN or -Infinity)', () => {
    for (const n of [NaN, Number.NEGATIVE_INFINITY]) {
      expect(() => reencode({ n })).to.throw();
      expect(foreignHeaderProblem({ n })).to.match(/cannot encode/);
    }
    expect(foreignHeaderProblem({ n: Number.POSITIVE_INFINITY, m: -(2 ** 63), f: 0.25 })).to.equal(undefined);
  });

  it("leaves Warren's and the broker's headers out of the bound", () => {
    expect(foreignHeaderProblem({ 'x-death': [{ count: 1 }], 'x-warren-error': 'e'.repeat(1000), traceparent: 't' })).to.equal(undefined);
  });

  it('a park copy leaves the deep header out, says why, and encodes', () => {
    const headers = decoded({ deep: nestedTable(3000), traceparent: 't' });
    const h = failureHeaders(headers, rec, 'permanent');
    expect(h).to.not.have.property('deep');
    expect(h.traceparent).to.equal('t');
    expect(h['x-warren-headers-dropped']).to.equal('header "deep" is nested more than 16 levels deep');
    expect(() => reencode(h)).to.not.throw();
  });
});

describe('trusted headers', () => {
  const forged = { 'x-warren-attempts': 9, 'x-warren-original-exchange': 'evil', 'x-warren-first-failure': '2020-01-01T00:00:00.000Z', traceparent: 't' };

  it("drops x-warren-* headers from a delivery that came through a service exchange: only a retry or a replay carries Warren's", () => {
    expect(trustedHeaders(forged, 'tweets')).to.deep.equal({ traceparent: 't' });
    expect(trustedHeaders(forged, '')).to.deep.equal({ traceparent: 't' });
    expect(trustedHeaders(forged, 'warren.return')).to.deep.equal(forged);
  });

  it('so a first failure records its own attempt, route and time', () => {
    const h = failureHeaders(trustedHeaders(forged, 'tweets'), rec, 'permanent');
    expect(h).to.include({ 'x-warren-attempts': 1, 'x-warren-original-exchange': 'tweets', 'x-warren-first-failure': rec.now.toISOString() });
  });
});

describe('64-bit integer headers', () => {
  it('decode exactly beyond 2^53 and encode back to the same bytes; smaller ones stay numbers', () => {
    const values = [2n ** 62n + 1n, -(2n ** 62n) - 1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n];
    const table = Object.fromEntries(values.map((v, i) => [`v${i}`, v]));
    const bytes = encodeTable(table);
    const headers = decodeFieldTable(bytes.subarray(4));
    values.forEach((v, i) => expect(headers[`v${i}`]).to.deep.equal(new Int64Header(v)));
    expect(decoded({ small: 5n, safe: BigInt(Number.MAX_SAFE_INTEGER) })).to.deep.equal({ small: 5, safe: Number.MAX_SAFE_INTEGER });
    const out = Buffer.alloc(1024);
    const n = codec.encodeTable(out, headers, 0);
    expect(out.subarray(0, n).equals(bytes)).to.equal(true);
  });

  it('export as JSON with their decimal digits', () => {
    expect(JSON.stringify({ h: new Int64Header(2n ** 62n + 1n) })).to.equal('{"h":{"!":"int64","value":"4611686018427387905"}}');
  });
});
