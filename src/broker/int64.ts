import { createRequire } from 'node:module';

/**
 * A 64-bit integer header (AMQP field type `l`) that a JS number cannot hold
 * exactly. amqplib 0.10 decodes `l` into a number (2^62+1 becomes 2^62) and
 * cannot encode a BigInt, so a retry, park or replay copy of a foreign
 * message would carry a different value than the one it was sent with.
 * Decoded as this instead, the value goes out again unchanged: `{ '!': type,
 * value }` is amqplib's own form for typed values (it decodes timestamps and
 * decimals the same way). Integers a number holds exactly stay numbers.
 */
export class Int64Header {
  readonly '!' = 'int64';
  constructor(readonly value: bigint) {}

  /** JSON has no 64-bit integers: exported (`warren dlq export`) as its decimal digits. */
  toJSON(): { '!': 'int64'; value: string } {
    return { '!': 'int64', value: this.value.toString() };
  }
}

interface Ints {
  readInt64BE(buf: Buffer, offset: number): number | Int64Header;
  writeInt64BE(buf: Buffer, value: number | bigint, offset: number): void;
}

let installed = false;

/**
 * amqplib's field-table codec reads and writes `l` through
 * buffer-more-ints, looked up at each call: the module amqplib itself
 * loads is the one patched (its frame sizes are read another way, so only
 * table values change). Idempotent; every module that opens an AMQP
 * connection calls it.
 */
export function installInt64Headers(): void {
  if (installed) return;
  installed = true;
  const fromAmqplib = createRequire(require.resolve('amqplib'));
  const ints = fromAmqplib('buffer-more-ints') as Ints;
  const write = ints.writeInt64BE;
  ints.readInt64BE = (buf, offset) => {
    const exact = buf.readBigInt64BE(offset);
    const n = Number(exact);
    return Number.isSafeInteger(n) ? n : new Int64Header(exact);
  };
  ints.writeInt64BE = (buf, value, offset) => {
    if (typeof value === 'bigint') buf.writeBigInt64BE(value, offset);
    else write(buf, value, offset);
  };
}
