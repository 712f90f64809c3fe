import { createRequire } from 'node:module';

/**
 * A 64-bit integer header (AMQP field type `l`) that a JS number cannot hold
 * exactly. amqplib decodes `l` into a number (2^62+1 becomes 2^62), so a
 * retry, park or replay copy of a foreign message would carry a different
 * value than the one it was sent with. Decoded as this instead, the value
 * goes out again unchanged: `{ '!': type, value }` is amqplib's own form for
 * typed values (it decodes timestamps and decimals the same way), and
 * amqplib 2 encodes an `int64` one from a BigInt exactly. Integers a number
 * holds exactly stay numbers.
 */
export class Int64Header {
  readonly '!' = 'int64';
  constructor(readonly value: bigint) {}

  /** JSON has no 64-bit integers: exported (`warren dlq export`) as its decimal digits. */
  toJSON(): { '!': 'int64'; value: string } {
    return { '!': 'int64', value: this.value.toString() };
  }
}

type FieldTable = Record<string, unknown>;

/**
 * An AMQP field table as amqplib 2's codec decodes it (lib/codec.js
 * `decodeFields`, the same value for every tag), except `l`: exact, an
 * Int64Header where a number would round. `slice` holds the table's fields
 * without its length prefix, as amqplib passes it.
 */
export function decodeFieldTable(slice: Buffer): FieldTable {
  const fields: FieldTable = {};
  let offset = 0;

  const value = (): unknown => {
    const tag = String.fromCharCode(slice[offset]!);
    offset++;
    let len: number;
    switch (tag) {
      case 'b':
        return slice.readInt8(offset++);
      case 'B':
        return slice.readUInt8(offset++);
      case 'S':
        len = slice.readUInt32BE(offset);
        offset += 4 + len;
        return slice.toString('utf8', offset - len, offset);
      case 'I':
        offset += 4;
        return slice.readInt32BE(offset - 4);
      case 'i':
        offset += 4;
        return slice.readUInt32BE(offset - 4);
      case 'D': {
        // amqplib decodes only positive decimals, as here.
        const places = slice[offset]!;
        const digits = slice.readUInt32BE(offset + 1);
        offset += 5;
        return { '!': 'decimal', value: { places, digits } };
      }
      case 'T':
        offset += 8;
        return { '!': 'timestamp', value: Number(slice.readBigUInt64BE(offset - 8)) };
      case 'F':
        len = slice.readUInt32BE(offset);
        offset += 4 + len;
        return decodeFieldTable(slice.subarray(offset - len, offset));
      case 'A': {
        len = slice.readUInt32BE(offset);
        offset += 4;
        const until = offset + len;
        const values: unknown[] = [];
        while (offset < until) values.push(value());
        return values;
      }
      case 'd':
        offset += 8;
        return slice.readDoubleBE(offset - 8);
      case 'f':
        offset += 4;
        return slice.readFloatBE(offset - 4);
      case 'l': {
        const exact = slice.readBigInt64BE(offset);
        offset += 8;
        const n = Number(exact);
        return Number.isSafeInteger(n) ? n : new Int64Header(exact);
      }
      case 's':
        offset += 2;
        return slice.readInt16BE(offset - 2);
      case 'u':
        offset += 2;
        return slice.readUInt16BE(offset - 2);
      case 't':
        return slice[offset++] !== 0;
      case 'V':
        return null;
      case 'x':
        len = slice.readUInt32BE(offset);
        offset += 4 + len;
        return slice.subarray(offset - len, offset);
      default:
        throw new TypeError(`Unexpected type tag "${tag}"`);
    }
  };

  while (offset < slice.length) {
    const len = slice.readUInt8(offset);
    offset++;
    const key = slice.toString('utf8', offset, offset + len);
    offset += len;
    fields[key] = value();
  }
  return fields;
}

interface Codec {
  decodeFields(slice: Buffer): FieldTable;
}
/** amqplib's internals that frames pass through (untyped): a parsed frame, and the connection that reads them. */
interface RawFrame {
  type: number;
  payload: Buffer;
}
interface FrameReader {
  rest: Buffer;
  maxFrameSize: number;
  recvFrame(this: FrameReader): unknown;
}

const amqplibInternal = createRequire(require.resolve('amqplib'));
const codec = amqplibInternal('./lib/codec.js') as Codec;
const frames = amqplibInternal('./lib/frame.js') as { parseFrame(bin: Buffer, max: number): RawFrame | false };
const { Connection } = amqplibInternal('./lib/connection.js') as { Connection: { prototype: FrameReader } };

/** amqplib's own decoder, for comparing against (it rounds `l`). */
export const amqplibDecodeFields: (slice: Buffer) => FieldTable = codec.decodeFields;

const FRAME_HEADER = 2;
const HEADERS_FLAG = 0x2000;

/**
 * The headers table of a content header frame's payload, decoded exactly;
 * undefined when it has none. The payload is class id (2 bytes), weight
 * (2), body size (8), property flags (2), then the properties in flag order:
 * content-type and content-encoding (short strings) come before headers.
 */
export function exactHeaders(payload: Buffer): FieldTable | undefined {
  const flags = payload.readUInt16BE(12);
  if (!(flags & HEADERS_FLAG)) return undefined;
  let offset = 14;
  if (flags & 0x8000) offset += 1 + payload[offset]!;
  if (flags & 0x4000) offset += 1 + payload[offset]!;
  const len = payload.readUInt32BE(offset);
  return decodeFieldTable(payload.subarray(offset + 4, offset + 4 + len));
}

let installed = false;

/**
 * Makes every delivery, get and return carry its headers decoded by
 * decodeFieldTable. amqplib binds its codec into its protocol module when
 * it loads, so Warren cannot swap the decoder itself; instead the
 * connection's frame reader (a method, looked up at each call, so this
 * holds whatever loaded amqplib first) decodes a content header frame's
 * headers again from its bytes. Idempotent; it runs when this module loads.
 */
export function installInt64Headers(): void {
  if (installed) return;
  installed = true;
  const recvFrame = Connection.prototype.recvFrame;
  Connection.prototype.recvFrame = function recvFrameWithExactHeaders(this: FrameReader): unknown {
    // The frame recvFrame is about to take, if it holds all of it yet (else it reads on and calls this again).
    const raw = frames.parseFrame(this.rest, this.maxFrameSize);
    const decoded = recvFrame.call(this) as { fields?: { headers?: unknown } } | false;
    if (raw && raw.type === FRAME_HEADER && decoded && decoded.fields) {
      const headers = exactHeaders(raw.payload);
      if (headers) decoded.fields.headers = headers;
    }
    return decoded;
  };
}

installInt64Headers();
