import { createRequire } from 'node:module';
import { PassThrough } from 'node:stream';
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
  /** A content header frame (type 2) as the broker sends one before a delivery's body: content-type, then the headers table. */
  const headerFrame = (headers: Buffer) => {
    const contentType = Buffer.from('application/json');
    const payload = Buffer.alloc(14);
    payload.writeUInt16BE(60, 0); // class basic
    payload.writeBigUInt64BE(2n, 4); // body size
    payload.writeUInt16BE(0x8000 | 0x2000, 12); // content-type and headers present
    const body = Buffer.concat([payload, Buffer.from([contentType.length]), contentType, headers]);
    const head = Buffer.alloc(7);
    head.writeUInt8(2, 0);
    head.writeUInt16BE(1, 1);
    head.writeUInt32BE(body.length, 3);
    return Buffer.concat([head, body, Buffer.from([0xce])]);
  };

  it("reads a delivery's headers exactly through amqplib's own frame reader, however amqplib was loaded", () => {
    const { Connection } = createRequire(require.resolve('amqplib'))('./lib/connection.js') as {
      Connection: new (stream: PassThrough) => { recvFrame(): { fields: { contentType: string; headers: Record<string, unknown> } } };
    };
    const stream = new PassThrough();
    const connection = new Connection(stream);
    // Split in two, as a socket may deliver it: the reader takes the rest on its next read.
    const frame = headerFrame(encodeTable({ big: 2n ** 62n + 1n, text: 'x', small: 7n }));
    stream.write(frame.subarray(0, 20));
    stream.write(frame.subarray(20));
    const { fields } = connection.recvFrame();
    expect(fields.contentType).to.equal('application/json');
    expect(fields.headers).to.deep.equal({ big: new Int64Header(2n ** 62n + 1n), text: 'x', small: 7 });
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
