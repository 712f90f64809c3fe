import { createRequire } from 'node:module';
import path from 'node:path';

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

const amqplibEntry = require.resolve('amqplib');
// amqplib's internal codec (untyped): loading it alone loads nothing else of amqplib.
const codec = createRequire(amqplibEntry)('./lib/codec.js') as Codec;

/** amqplib's own decoder, for comparing against (it rounds `l`). */
export const amqplibDecodeFields: (slice: Buffer) => FieldTable = codec.decodeFields;

/**
 * Makes amqplib decode every field table (headers, arguments) with
 * decodeFieldTable. Its protocol module (lib/defs.js) takes the codec's
 * decodeFields once, when it loads, so this must run before amqplib is
 * first loaded: it runs when this module is imported, and every Warren
 * module that loads amqplib imports this one first (connection.ts, where
 * amqp-connection-manager loads it too). Idempotent.
 *
 * A process that loaded amqplib before (a test or a benchmark importing it
 * first) keeps amqplib's rounding: that is reported by int64HeadersExact,
 * and connectBroker logs it, rather than thrown at an import that may be
 * far from the cause.
 */
export function installInt64Headers(): void {
  if (codec.decodeFields === decodeFieldTable) return;
  if (require.cache[path.join(path.dirname(amqplibEntry), 'lib', 'defs.js')]) return;
  codec.decodeFields = decodeFieldTable;
}

/** Whether this process's amqplib decodes 64-bit integer headers exactly (false when amqplib loaded before this module). */
export function int64HeadersExact(): boolean {
  return codec.decodeFields === decodeFieldTable;
}

installInt64Headers();
