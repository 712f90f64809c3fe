import net from 'node:net';

/**
 * A publisher that writes AMQP 0-9-1 frames itself, the way a third-party
 * client (pika, a Go or Java client) can: header tables amqplib cannot
 * encode (nested thousands of levels deep, exact 64-bit integers) go out as
 * the bytes the test builds. Just enough protocol for one confirmed publish.
 */

/** A field value already encoded, type tag included. */
export class RawField {
  constructor(readonly bytes: Buffer) {}
}

export type FieldValue = string | boolean | number | bigint | Buffer | RawField | FieldValue[] | { [key: string]: FieldValue };

const u8 = (n: number) => Buffer.from([n]);
function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}
function u64(n: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}
function shortstr(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (b.length > 255) throw new Error(`shortstr of ${b.length} bytes`);
  return Buffer.concat([u8(b.length), b]);
}
function longstr(s: string | Buffer): Buffer {
  const b = Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8');
  return Buffer.concat([u32(b.length), b]);
}

export function encodeField(v: FieldValue): Buffer {
  if (v instanceof RawField) return v.bytes;
  if (typeof v === 'string') return Buffer.concat([Buffer.from('S'), longstr(v)]);
  if (typeof v === 'boolean') return Buffer.from([0x74, v ? 1 : 0]);
  if (typeof v === 'bigint') {
    const b = Buffer.alloc(9);
    b.write('l');
    b.writeBigInt64BE(v, 1);
    return b;
  }
  if (typeof v === 'number') {
    const b = Buffer.alloc(Number.isInteger(v) && Math.abs(v) < 2 ** 31 ? 5 : 9);
    if (b.length === 5) {
      b.write('I');
      b.writeInt32BE(v, 1);
    } else {
      b.write('d');
      b.writeDoubleBE(v, 1);
    }
    return b;
  }
  if (Buffer.isBuffer(v)) return Buffer.concat([Buffer.from('x'), longstr(v)]);
  if (Array.isArray(v)) {
    const items = Buffer.concat(v.map(encodeField));
    return Buffer.concat([Buffer.from('A'), u32(items.length), items]);
  }
  return Buffer.concat([Buffer.from('F'), encodeTable(v)]);
}

export function encodeTable(table: Record<string, FieldValue>): Buffer {
  const entries = Buffer.concat(Object.entries(table).map(([k, v]) => Buffer.concat([shortstr(k), encodeField(v)])));
  return Buffer.concat([u32(entries.length), entries]);
}

/** A table nested `depth` levels deep ({ n: { n: ... } }), built from the inside out: no recursion. */
export function nestedTable(depth: number, key = 'n'): RawField {
  let inner = u32(0);
  for (let i = 1; i < depth; i++) inner = Buffer.concat([u32(2 + key.length + inner.length), shortstr(key), Buffer.from('F'), inner]);
  return new RawField(Buffer.concat([Buffer.from('F'), inner]));
}

export interface RawProperties {
  contentType?: string;
  contentEncoding?: string;
  headers?: Record<string, FieldValue>;
  deliveryMode?: number;
  correlationId?: string;
  messageId?: string;
  timestamp?: number;
  type?: string;
  appId?: string;
}

function encodeProperties(p: RawProperties): { flags: number; bytes: Buffer } {
  const parts: Buffer[] = [];
  let flags = 0;
  const add = (bit: number, value: Buffer | undefined) => {
    if (value === undefined) return;
    flags |= 1 << bit;
    parts.push(value);
  };
  add(15, p.contentType === undefined ? undefined : shortstr(p.contentType));
  add(14, p.contentEncoding === undefined ? undefined : shortstr(p.contentEncoding));
  add(13, p.headers === undefined ? undefined : encodeTable(p.headers));
  add(12, p.deliveryMode === undefined ? undefined : u8(p.deliveryMode));
  add(10, p.correlationId === undefined ? undefined : shortstr(p.correlationId));
  add(7, p.messageId === undefined ? undefined : shortstr(p.messageId));
  add(6, p.timestamp === undefined ? undefined : u64(p.timestamp));
  add(5, p.type === undefined ? undefined : shortstr(p.type));
  add(3, p.appId === undefined ? undefined : shortstr(p.appId));
  return { flags, bytes: Buffer.concat(parts) };
}

function frame(type: number, channel: number, payload: Buffer): Buffer {
  return Buffer.concat([u8(type), u16(channel), u32(payload.length), payload, u8(0xce)]);
}

function method(channel: number, classId: number, methodId: number, args: Buffer): Buffer {
  return frame(1, channel, Buffer.concat([u16(classId), u16(methodId), args]));
}

interface Method {
  channel: number;
  id: string;
  args: Buffer;
}

/** Reads frames off the socket and hands out method frames in order. */
class FrameReader {
  private buf = Buffer.alloc(0);
  private readonly methods: Method[] = [];
  private waiter: ((m: Method) => void) | undefined;
  private failure: Error | undefined;

  constructor(socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 8) {
        const size = this.buf.readUInt32BE(3);
        if (this.buf.length < size + 8) break;
        const type = this.buf[0];
        const channel = this.buf.readUInt16BE(1);
        const payload = this.buf.subarray(7, 7 + size);
        this.buf = this.buf.subarray(size + 8);
        if (type === 1) this.push({ channel, id: `${payload.readUInt16BE(0)}.${payload.readUInt16BE(2)}`, args: payload.subarray(4) });
      }
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      this.waiter?.({ channel: -1, id: 'failed', args: Buffer.alloc(0) });
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed by the broker')));
  }

  private push(m: Method): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(m);
    } else {
      this.methods.push(m);
    }
  }

  /** The next method frame, which must be `id` (class.method); a close from the broker fails with its reason. */
  async expect(id: string): Promise<Method> {
    const m = this.methods.shift() ?? (this.failure ? undefined : await new Promise<Method>((resolve) => (this.waiter = resolve)));
    if (!m || m.id === 'failed') throw this.failure ?? new Error('connection failed');
    if (m.id === '10.50' || m.id === '20.40') {
      const code = m.args.readUInt16BE(0);
      const text = m.args.subarray(3, 3 + m.args[2]!).toString('utf8');
      throw new Error(`broker closed the ${m.id === '10.50' ? 'connection' : 'channel'}: ${code} ${text}`);
    }
    if (m.id !== id) throw new Error(`expected method ${id}, got ${m.id}`);
    return m;
  }
}

/**
 * Connects as `url` says (PLAIN), publishes one message with confirms and
 * resolves once the broker acked it; rejects on a nack or a close.
 */
export async function rawFramePublish(url: string, exchange: string, routingKey: string, content: Buffer, props: RawProperties): Promise<void> {
  const u = new URL(url);
  const vhost = u.pathname.length > 1 ? decodeURIComponent(u.pathname.slice(1)) : '/';
  const socket = net.connect(Number(u.port || 5672), u.hostname);
  const reader = new FrameReader(socket);
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write(Buffer.from('AMQP\x00\x00\x09\x01', 'binary'));
    await reader.expect('10.10');
    const response = `\x00${decodeURIComponent(u.username)}\x00${decodeURIComponent(u.password)}`;
    socket.write(
      method(0, 10, 11, Buffer.concat([encodeTable({ product: 'warren raw-frame test client' }), shortstr('PLAIN'), longstr(response), shortstr('en_US')])),
    );
    const tune = await reader.expect('10.30');
    const frameMax = tune.args.readUInt32BE(2) || 131_072;
    socket.write(method(0, 10, 31, Buffer.concat([u16(1), u32(frameMax), u16(0)])));
    socket.write(method(0, 10, 40, Buffer.concat([shortstr(vhost), shortstr(''), u8(0)])));
    await reader.expect('10.41');
    socket.write(method(1, 20, 10, shortstr('')));
    await reader.expect('20.11');
    socket.write(method(1, 85, 10, u8(0)));
    await reader.expect('85.11');

    const { flags, bytes } = encodeProperties({ deliveryMode: 2, ...props });
    const parts = [
      method(1, 60, 40, Buffer.concat([u16(0), shortstr(exchange), shortstr(routingKey), u8(0)])),
      frame(2, 1, Buffer.concat([u16(60), u16(0), u64(content.length), u16(flags), bytes])),
    ];
    for (let i = 0; i < content.length; i += frameMax - 8) parts.push(frame(3, 1, content.subarray(i, i + frameMax - 8)));
    socket.write(Buffer.concat(parts));
    const confirm = await reader.expect('60.80').catch((err: Error) => {
      throw /got 60\.120/.test(err.message) ? new Error('broker nacked the publish') : err;
    });
    void confirm;

    socket.write(method(0, 10, 50, Buffer.concat([u16(200), shortstr('bye'), u16(0), u16(0)])));
    await reader.expect('10.51');
  } finally {
    socket.destroy();
  }
}
