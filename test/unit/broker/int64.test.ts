import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { expect } from 'chai';
import { amqplibDecodeFields, decodeFieldTable, Int64Header } from '../../../src/broker/int64';
import { encodeTable, nestedTable, RawField } from '../../support/rawAmqp';

/** One field of the given type tag and value bytes, as a third-party client writes it. */
const raw = (tag: string, bytes: number[] | Buffer) => new RawField(Buffer.concat([Buffer.from(tag), Buffer.from(bytes)]));

// amqplib's encoder (internal, untyped): what a retry, park or replay copy is written with.
const codec = createRequire(require.resolve('amqplib'))('./lib/codec.js') as {
  decodeFields(slice: Buffer): Record<string, unknown>;
  encodeTable(buf: Buffer, table: Record<string, unknown>, offset: number): number;
};

describe('the field-table decoder amqplib runs in Warren', () => {
  /** In a fresh Node process: whether amqplib decodes exactly after the modules `first` are loaded, then connection.ts. */
  const exactAfter = (first: string[]) => {
    const connection = path.join(__dirname, '../../../src/broker/connection.js');
    const int64 = path.join(__dirname, '../../../src/broker/int64.js');
    const script =
      [...first, connection].map((m) => `require(${JSON.stringify(m)});`).join('') + `console.log(require(${JSON.stringify(int64)}).int64HeadersExact());`;
    return execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }).trim();
  };

  it('is installed before amqplib loads wherever Warren opens a connection, so deliveries decode through it', () => {
    expect(codec.decodeFields).to.equal(decodeFieldTable);
    expect(amqplibDecodeFields).to.not.equal(decodeFieldTable);
    expect(exactAfter([])).to.equal('true');
    expect(exactAfter(['amqp-connection-manager']), 'the manager loads amqplib').to.equal('false');
    expect(exactAfter([require.resolve('amqplib')])).to.equal('false');
  });

  it('decodes every type tag exactly as amqplib does', () => {
    const table = encodeTable({
      text: 'héllo',
      yes: true,
      no: false,
      int: -70000,
      double: 1.5,
      bytes: Buffer.from([1, 2, 3]),
      list: ['a', 7, [true], { inner: 'x' }],
      nested: { deeper: { deepest: 'y' } },
      int8: raw('b', [0xff]),
      uint8: raw('B', [0xff]),
      int16: raw('s', [0x80, 0x00]),
      uint16: raw('u', [0xff, 0xff]),
      uint32: raw('i', [0xff, 0xff, 0xff, 0xff]),
      float: raw('f', [0x3f, 0xc0, 0x00, 0x00]),
      decimal: raw('D', [2, 0, 0, 0x30, 0x39]),
      timestamp: raw('T', [0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00]),
      void: raw('V', []),
      smallLong: 42n,
      safeLong: BigInt(Number.MAX_SAFE_INTEGER),
      deep: nestedTable(300),
    }).subarray(4);
    const ours = decodeFieldTable(table);
    expect(ours).to.deep.equal(amqplibDecodeFields(table));
    expect(ours).to.include({ int8: -1, uint8: 255, int16: -32768, uint16: 65535, uint32: 4294967295, float: 1.5, void: null, smallLong: 42 });
    expect(ours.decimal).to.deep.equal({ '!': 'decimal', value: { places: 2, digits: 12345 } });
    expect(ours.timestamp).to.deep.equal({ '!': 'timestamp', value: 0x6553f100 });
  });

  it('keeps a 64-bit integer beyond 2^53 exact, where amqplib rounds it, and amqplib writes it back as the same bytes', () => {
    const values = [2n ** 62n + 1n, -(2n ** 62n) - 1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n];
    const bytes = encodeTable(Object.fromEntries(values.map((v, i) => [`v${i}`, v])));
    const ours = decodeFieldTable(bytes.subarray(4));
    values.forEach((v, i) => expect(ours[`v${i}`]).to.deep.equal(new Int64Header(v)));
    expect(amqplibDecodeFields(bytes.subarray(4)).v0).to.equal(2 ** 62);
    const out = Buffer.alloc(1024);
    const n = codec.encodeTable(out, ours, 0);
    expect(out.subarray(0, n).equals(bytes)).to.equal(true);
  });

  it('refuses an unknown type tag as amqplib does', () => {
    const table = encodeTable({ odd: raw('Z', [0]) }).subarray(4);
    expect(() => amqplibDecodeFields(table)).to.throw(TypeError, 'Unexpected type tag "Z"');
    expect(() => decodeFieldTable(table)).to.throw(TypeError, 'Unexpected type tag "Z"');
  });
});
