import { type Channel, type ChannelModel, type GetMessage, type MessageProperties } from 'amqplib';
import { vhostOf } from '../config';
import { headerString } from '../domain/messages';
import { createLogger, type Logger } from '../log';
import { connectBroker, connectOnce } from '../broker/connection';
import { boundForeignHeaders, describeDropped } from '../consume/foreignHeaders';
import { installInt64Headers } from '../broker/int64';
import { withoutPassword } from '../topology/management';
import { ConfirmPublisher, copiedProperties, type PublishRequest } from '../broker/publisher';
import { isBrokerHeader, MAX_ERROR_BYTES, PARK_KINDS, REPLAY_HEADERS, replayHeaders, truncateUtf8, WARREN_HEADERS, type ParkKind } from '../consume/retry';
import { dlqOf, PARK_EXCHANGE, RETURN_EXCHANGE } from '../topology/definitions';

/**
 * Operator tooling behind `warren dlq list|replay|export|purge <queue>`.
 * One-shot commands on a plain amqplib connection: `basic.get` without ack,
 * so that whatever is not explicitly acked goes back to the DLQ when the
 * channel closes. Nothing parked is deleted except by a replay that was
 * confirmed, or by an explicit purge.
 *
 * A message looked at and left parked is held unacked until the command
 * ends: a held message is not handed out again, so a scan never meets the
 * same message twice and ends after the messages that were parked when it
 * began (a crash gives them back too).
 */

const isParkKind = (kind: string): kind is ParkKind => (PARK_KINDS as readonly string[]).includes(kind);

/** Why a message is parked, as far as its headers tell: `unknown` when neither Warren's nor the broker's say. */
export type ParkedKind = ParkKind | 'unknown';

export interface ParkedMessage {
  messageId: string | null;
  type: string | null;
  /** Warren's x-warren-error, or the broker's x-death reason (e.g. `delivery_limit`). */
  reason: string | null;
  kind: ParkedKind;
  attempts: number | null;
  firstFailure: string | null;
  lastFailure: string | null;
  originalQueue: string | null;
}

export interface ReplayResult {
  replayed: number;
  /** Left parked: not selected, or they cannot be replayed (no message_id, no known original queue). */
  skipped: number;
  /** Still in the DLQ when the replay finished. */
  remaining: number;
  /** Stopped early (a signal): the rest was left parked, untouched. */
  interrupted: boolean;
  /**
   * Of `skipped`: selected, but left parked because it may be older than
   * its inbox records (ReplayOptions.staleBefore). Present when that was given.
   */
  stale?: number;
}

export class DlqError extends Error {
  constructor(message: string, readonly replayed = 0) {
    super(message);
    this.name = 'DlqError';
  }
}

// A re-parked or replayed copy keeps a 64-bit integer header exact.
installInt64Headers();


/** Headers the broker or Warren added on the way into the DLQ; a replay starts clean without them. */
function isParkingHeader(key: string): boolean {
  return key.startsWith('x-warren-') || isBrokerHeader(key);
}

interface DeathEntry {
  reason?: string;
  queue?: string;
  time?: number | { value: number };
}

function deaths(headers: Record<string, unknown>): DeathEntry[] {
  const raw = headers['x-death'];
  return Array.isArray(raw) ? (raw as DeathEntry[]) : [];
}

/** amqplib decodes an AMQP timestamp in a table as `{ '!': 'timestamp', value }` (seconds). */
function deathSeconds(entry: DeathEntry | undefined): number | undefined {
  const t = entry?.time;
  const seconds = typeof t === 'number' ? t : t?.value;
  return typeof seconds === 'number' && Number.isFinite(seconds) ? seconds : undefined;
}

function deathTime(entry: DeathEntry | undefined): string | null {
  const seconds = deathSeconds(entry);
  return seconds === undefined ? null : new Date(seconds * 1000).toISOString();
}

/**
 * The earliest moment a consumer could have applied this message's effect,
 * and so written its inbox record (epoch ms), or null when the message says
 * nothing of its age. The earliest of what it carries: its AMQP `timestamp`
 * (seconds; the event was made then, every copy shares it), Warren's
 * `x-warren-first-failure`, and every `x-death` time (a broker park has only
 * those). The earliest, because a copy of the same message id may have been
 * applied long before this one first failed.
 */
export function parkedSince(properties: MessageProperties): number | null {
  const h: Record<string, unknown> = properties.headers ?? {};
  const times: number[] = [];
  const stamp: unknown = properties.timestamp;
  if (typeof stamp === 'number' && Number.isFinite(stamp)) times.push(stamp * 1000);
  const first = Date.parse(headerString(h[WARREN_HEADERS.firstFailure]) ?? '');
  if (Number.isFinite(first)) times.push(first);
  for (const d of deaths(h)) {
    const seconds = deathSeconds(d);
    if (seconds !== undefined) times.push(seconds * 1000);
  }
  return times.length > 0 ? Math.min(...times) : null;
}

export function describeParked(properties: MessageProperties): ParkedMessage {
  const h: Record<string, unknown> = properties.headers ?? {};
  const all = deaths(h);
  // x-death lists the most recent death first: for a broker park, that is the park.
  const park = all[0];
  const warrenKind = headerString(h[WARREN_HEADERS.kind]);
  const attempts = Number(headerString(h[WARREN_HEADERS.attempts]));
  return {
    messageId: headerString(properties.messageId) ?? null,
    type: headerString(properties.type) ?? null,
    reason: headerString(h[WARREN_HEADERS.error]) ?? park?.reason ?? null,
    kind: warrenKind && isParkKind(warrenKind) ? warrenKind : park?.reason === 'delivery_limit' ? 'crash-loop' : 'unknown',
    attempts: Number.isInteger(attempts) && headerString(h[WARREN_HEADERS.attempts]) !== undefined ? attempts : null,
    firstFailure: headerString(h[WARREN_HEADERS.firstFailure]) ?? deathTime(all[all.length - 1]),
    lastFailure: headerString(h[WARREN_HEADERS.lastFailure]) ?? deathTime(park),
    originalQueue: headerString(h[WARREN_HEADERS.originalQueue]) ?? park?.queue ?? null,
  };
}

interface OpenDlq {
  conn: ChannelModel;
  channel: Channel;
  dlq: string;
  /** Ready messages in the DLQ when it was opened. */
  parked: number;
}

async function openDlq(url: string, queue: string, purpose: string): Promise<OpenDlq> {
  const dlq = dlqOf(queue);
  let conn: ChannelModel;
  try {
    conn = await connectOnce(url, `dlq ${purpose}`, 'inspect');
  } catch (err) {
    throw new DlqError(`cannot connect to ${withoutPassword(url)}: ${(err as Error).message}`);
  }
  // Errors also reject the pending operation; the listeners only keep them from crashing the process.
  conn.on('error', () => undefined);
  try {
    const channel = await conn.createChannel();
    channel.on('error', () => undefined);
    const { messageCount } = await channel.checkQueue(dlq);
    return { conn, channel, dlq, parked: messageCount };
  } catch (err) {
    await conn.close().catch(() => undefined);
    throw new DlqError(`queue ${dlq} in vhost ${vhostOf(url)}: ${(err as Error).message}`);
  }
}

async function closeQuietly(conn: ChannelModel): Promise<void> {
  await conn.close().catch(() => undefined);
}

/**
 * Parked messages taken and not removed, in the order they were taken. Only
 * the delivery tag is kept: a DLQ may hold a gigabyte of bodies.
 */
class HeldMessages {
  private readonly tags: { seq: number; tag: number }[] = [];

  add(seq: number, msg: GetMessage): void {
    this.tags.push({ seq, tag: msg.fields.deliveryTag });
  }

  get size(): number {
    return this.tags.length;
  }

  inOrder(): number[] {
    return this.tags.sort((a, b) => a.seq - b.seq).map((t) => t.tag);
  }
}

/** Seen on RabbitMQ 3.10: without a pause, 66 of 3,000 acked messages came back in one run of three; with it, none in six. */
const ACK_FLUSH_MS = 1000;

/**
 * Gives every held message back (nack with requeue, in the order taken) and
 * waits until the broker counts them again: the return is asynchronous, and
 * a command that ran next could otherwise see the DLQ without them. RabbitMQ
 * 3.10 puts requeued messages of a quorum queue at its tail, and past a few
 * dozen not always in the order given: looking at a DLQ may reorder it.
 */
async function giveBack(conn: ChannelModel, channel: Channel, dlq: string, held: HeldMessages, acked = false): Promise<void> {
  // The broker's channel forwards acks to a quorum queue a few dozen at a time and keeps the rest
  // until the queue has applied those; closing it before then returns acked messages to the DLQ
  // (duplicates of what was replayed). Give them time to go out.
  if (acked) await new Promise((r) => setTimeout(r, ACK_FLUSH_MS));
  const { messageCount: before } = await channel.checkQueue(dlq);
  // nack reads only the delivery tag; the bodies are long gone.
  for (const deliveryTag of held.inOrder()) channel.nack({ fields: { deliveryTag } } as unknown as GetMessage, false, true);
  await channel.close().catch(() => undefined);
  if (held.size === 0) return;
  const probe = await conn.createChannel();
  probe.on('error', () => undefined);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && (await probe.checkQueue(dlq)).messageCount < before + held.size) await new Promise((r) => setTimeout(r, 20));
  await probe.close().catch(() => undefined);
}

/** Looks at up to `limit` parked messages; all of them stay parked, unchanged and in order. */
export async function listParked(url: string, queue: string, limit: number): Promise<ParkedMessage[]> {
  return (await peekParked(url, queue, limit)).map((m) => describeParked(m.properties));
}

/** Up to `limit` parked messages as they are; all of them stay parked, in order. */
async function peekParked(url: string, queue: string, limit: number, purpose = 'list'): Promise<GetMessage[]> {
  const { conn, channel, dlq, parked } = await openDlq(url, queue, purpose);
  const out: GetMessage[] = [];
  try {
    const held = new HeldMessages();
    while (out.length < Math.min(limit, parked)) {
      const msg = await channel.get(dlq, { noAck: false });
      if (!msg) break;
      held.add(out.length, msg);
      out.push(msg);
    }
    // Never acked: every message looked at goes back to the DLQ.
    await giveBack(conn, channel, dlq, held);
  } finally {
    await closeQuietly(conn);
  }
  return out;
}

/** A parked message as `warren dlq export` writes it: enough to inspect it, or to publish it again by hand. */
export interface ExportedMessage {
  parked: ParkedMessage;
  /** The body as UTF-8 text when it is valid UTF-8, else base64. */
  body: string;
  bodyEncoding: 'utf8' | 'base64';
  /** AMQP properties as the broker delivered them, headers included. */
  properties: MessageProperties;
  routingKey: string;
  exchange: string;
}

function exportBody(content: Buffer): Pick<ExportedMessage, 'body' | 'bodyEncoding'> {
  const text = content.toString('utf8');
  return Buffer.from(text, 'utf8').equals(content) ? { body: text, bodyEncoding: 'utf8' } : { body: content.toString('base64'), bodyEncoding: 'base64' };
}

/** Every message parked now (or the first `limit`), with body, properties and headers; all stay parked. */
export async function exportParked(url: string, queue: string, limit = Infinity): Promise<ExportedMessage[]> {
  const msgs = await peekParked(url, queue, limit, 'export');
  return msgs.map((m) => ({
    parked: describeParked(m.properties),
    ...exportBody(m.content),
    properties: m.properties,
    routingKey: m.fields.routingKey,
    exchange: m.fields.exchange,
  }));
}

/**
 * A message a replay did not select goes back to the tail of its DLQ as an
 * exact copy (confirmed before the original is acked), so that after a full
 * pass the DLQ holds what it held, in the same order: RabbitMQ 3.10 requeues
 * in no dependable order. Headers the broker sets itself are left to it; so
 * are a per-message TTL (a parked message must not expire) and user-id
 * (the broker checks it against whoever publishes).
 */
function reparkRequest(msg: GetMessage, queue: string): PublishRequest | undefined {
  const p = msg.properties;
  const messageId = headerString(p.messageId);
  // A return is matched to its publish by message id: without one, a copy cannot be confirmed as delivered.
  if (!messageId) return undefined;
  const headers: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p.headers ?? {})) if (k !== 'x-delivery-count') headers[k] = v;
  return {
    exchange: PARK_EXCHANGE,
    routingKey: queue,
    content: msg.content,
    properties: copiedProperties(p, messageId, copyable(headers)),
  };
}

/**
 * A copy's headers, less the foreign ones it could not carry (parked by the
 * broker, or by a Warren before foreign headers were bounded: nested too
 * deep to encode again, too large): those are left out and named, so one
 * such message does not stop a replay.
 */
function copyable(headers: Record<string, unknown>): Record<string, unknown> {
  const { dropped } = boundForeignHeaders(headers);
  if (dropped.length === 0) return headers;
  const out = { ...headers };
  for (const { name } of dropped) delete out[name];
  out[WARREN_HEADERS.headersDropped] = truncateUtf8(describeDropped(dropped), MAX_ERROR_BYTES);
  return out;
}

/**
 * The copy sent back: same body and properties, without the parking
 * headers; with a replay id, it also says which replay sent it and how many
 * times the message has been replayed (one more than the copy it came from).
 */
function replayRequest(msg: GetMessage, replayId?: string): PublishRequest | string {
  const p = msg.properties;
  const park = describeParked(p);
  if (!park.messageId) return 'it has no message_id, so a consumer would park it again';
  if (!park.originalQueue) return 'it names no original queue (no x-warren-original-queue, no x-death)';
  const headers: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p.headers ?? {})) if (!isParkingHeader(k)) headers[k] = v;
  if (replayId !== undefined) {
    const before = Number(replayHeaders(p.headers ?? {})[REPLAY_HEADERS.count] ?? 0);
    Object.assign(headers, { [REPLAY_HEADERS.count]: before + 1, [REPLAY_HEADERS.id]: replayId });
  }
  return {
    exchange: RETURN_EXCHANGE,
    routingKey: park.originalQueue,
    content: msg.content,
    properties: copiedProperties(p, park.messageId, copyable(headers)),
  };
}

/** Which parked messages a replay sends back; with none of them set, every message is selected. */
export interface ReplaySelection {
  /** Only messages with one of these message ids. */
  ids?: string[];
  /** Only messages whose error (x-warren-error, or the broker's x-death reason) contains this, case-insensitively. */
  errorContains?: string;
  /** Replay at most this many (of the selected ones). */
  limit?: number;
  /** Only messages this says yes to (beside the selection above), e.g. one park of a message by its body and park time. */
  matches?: (msg: GetMessage) => boolean;
}

export interface ReplayProgress {
  /** Messages looked at so far, of `total` parked when the replay began. */
  scanned: number;
  total: number;
  replayed: number;
  skipped: number;
}

export interface ReplayOptions extends ReplaySelection {
  log?: Logger;
  publishTimeoutMs?: number;
  onProgress?: (p: ReplayProgress) => void;
  /** Replays published before waiting for their confirms (default REPLAY_WINDOW). */
  window?: number;
  /** Aborting stops after the message in hand; what was not replayed stays parked. */
  signal?: AbortSignal;
  /**
   * Leave parked (as an exact copy, like an unselected one) every selected
   * message whose effect could have been applied before this time (epoch
   * ms, see parkedSince), or whose age is unknown: the consumers prune their
   * inbox records after `inbox.retentionDays`, and a message applied once
   * whose record is gone would be applied again. Callers that replay for an
   * operator set it unless told otherwise (`--allow-stale`).
   */
  staleBefore?: number;
  /** Marks each replayed copy with this replay's id and the message's replay count (REPLAY_HEADERS). */
  replayId?: string;
  /** Called for each selected message once it has left the DLQ (its copy confirmed, or discarded). */
  onTaken?: (msg: GetMessage) => void;
}

/**
 * One confirm round trip per message (a quorum queue's fsync) holds a
 * replay to a few dozen messages a second; a window of them in flight at
 * once does not, and costs nothing in safety: each is acked on its own confirm.
 */
export const REPLAY_WINDOW = 100;

export function isSelected(park: ParkedMessage, sel: ReplaySelection): boolean {
  if (sel.ids && sel.ids.length > 0 && !(park.messageId && sel.ids.includes(park.messageId))) return false;
  if (sel.errorContains !== undefined && !(park.reason ?? '').toLowerCase().includes(sel.errorContains.toLowerCase())) return false;
  return true;
}

/**
 * Sends parked messages back to the queue they failed in, through
 * `warren.return`, one at a time. The DLQ copy is acked only after the
 * replayed copy is confirmed and not returned, so an interrupted replay loses
 * nothing (at worst one message is both replayed and still parked; consumers
 * are idempotent by message_id). A message not selected is re-parked: an
 * exact copy goes to the tail of the DLQ, confirmed before the original is
 * acked, so a full pass leaves the DLQ in its order. A copy the
 * broker returns or does not confirm stops the replay; replays already in
 * flight in the same window finish, and the failed message stays parked.
 */
export async function replayParked(url: string, queue: string, opts: ReplayOptions = {}): Promise<ReplayResult> {
  return takeParked(url, queue, opts, 'replay');
}

/**
 * Deletes the selected parked messages of the queue's DLQ (an operator's
 * explicit discard), leaving every other one parked and in order, as a
 * replay does: `replayed` in the result counts the discarded ones.
 */
export async function discardParked(url: string, queue: string, opts: ReplayOptions = {}): Promise<ReplayResult> {
  return takeParked(url, queue, { ...opts, replayId: undefined }, 'discard');
}

async function takeParked(url: string, queue: string, opts: ReplayOptions, mode: 'replay' | 'discard'): Promise<ReplayResult> {
  const { conn, channel, dlq, parked } = await openDlq(url, queue, mode);
  const log = opts.log ?? createLogger('dlq', 'silent');
  // Publishing gets its own connection: a broker alarm blocks publishers, and must not block our acks.
  const broker = connectBroker({ url, service: 'dlq replay', role: 'publish', heartbeatSeconds: 10, reconnectSeconds: 1, log });
  const publisher = new ConfirmPublisher(broker, log, opts.publishTimeoutMs ?? 10_000);
  const window = Math.max(1, opts.window ?? REPLAY_WINDOW);
  // Messages that can be neither replayed nor copied (no message_id) stay held until the end.
  const held = new HeldMessages();
  let replayed = 0;
  let skipped = 0;
  let scanned = 0;
  let stale = 0;
  let carry: InFlight | undefined;
  const progress = () => opts.onProgress?.({ scanned, total: parked, replayed, skipped });
  try {
    if (!(await publisher.waitForChannel(10_000))) throw new DlqError(`cannot open a publishing channel to ${withoutPassword(url)}`);
    progress();
    // Only what was parked when the replay began: a message that fails again (or a re-parked copy) lands behind us and must not loop.
    const limit = opts.limit ?? Infinity;
    let drained = false;
    while (!drained && (scanned < parked || carry) && replayed < limit && !opts.signal?.aborted) {
      const batch: InFlight[] = carry ? [carry] : [];
      carry = undefined;
      const ids = new Set(batch.map((b) => b.req.properties.messageId));
      const selectedInBatch = () => batch.filter((b) => b.replay).length;
      while (batch.length < window && scanned < parked && replayed + selectedInBatch() < limit) {
        const msg = await channel.get(dlq, { noAck: false });
        if (!msg) {
          drained = true;
          break;
        }
        const seq = scanned++;
        let selected = isSelected(describeParked(msg.properties), opts) && (opts.matches?.(msg) ?? true);
        if (selected && opts.staleBefore !== undefined && (parkedSince(msg.properties) ?? -Infinity) < opts.staleBefore) {
          selected = false;
          stale++;
        }
        if (selected && mode === 'discard') {
          // Discarded on the operator's word: nothing to confirm first.
          channel.ack(msg);
          replayed++;
          opts.onTaken?.(msg);
          continue;
        }
        const replay = selected ? replayRequest(msg, opts.replayId) : undefined;
        if (typeof replay === 'string') log.warn({ dlq, messageId: msg.properties.messageId }, `left parked: ${replay}`);
        const req = typeof replay === 'object' ? replay : reparkRequest(msg, queue);
        if (!req) {
          held.add(seq, msg);
          skipped++;
          continue;
        }
        const item = { seq, msg, req, replay: typeof replay === 'object' };
        // A return is matched to its publish by message id: two copies of one id never share a window.
        if (ids.has(req.properties.messageId)) {
          carry = item;
          break;
        }
        ids.add(req.properties.messageId);
        batch.push(item);
      }
      // Confirms pipelined over the window; each DLQ original is acked only after its own copy's confirm.
      const outcomes = await publisher.publishAll(batch.map((b) => b.req));
      let failure: string | undefined;
      batch.forEach((b, i) => {
        const err = outcomes[i];
        if (err) {
          held.add(b.seq, b.msg);
          const what = b.replay ? `message ${b.req.properties.messageId} to queue ${b.req.routingKey}` : `copy of unselected message ${b.req.properties.messageId} back to ${dlq}`;
          failure ??= `${what}: ${err.message}`;
          return;
        }
        channel.ack(b.msg);
        if (b.replay) opts.onTaken?.(b.msg);
        if (b.replay) replayed++;
        else skipped++;
      });
      progress();
      if (failure) {
        if (carry) held.add(carry.seq, carry.msg);
        await giveBack(conn, channel, dlq, held, true);
        throw new DlqError(`replay stopped after ${replayed} message(s): ${failure}`, replayed);
      }
    }
    if (carry) held.add(carry.seq, carry.msg);
    // Counted before the held messages go back: until then the broker does not count them as ready.
    const { messageCount } = await channel.checkQueue(dlq);
    const remaining = messageCount + held.size;
    await giveBack(conn, channel, dlq, held, replayed + skipped - held.size > 0);
    return { replayed, skipped, remaining, interrupted: opts.signal?.aborted ?? false, ...(opts.staleBefore !== undefined ? { stale } : {}) };
  } finally {
    await publisher.close();
    await broker.close();
    // Whatever is still held (an error on the way) goes back to the DLQ with the connection.
    await closeQuietly(conn);
  }
}

/** A message taken from the DLQ whose copy (replayed, or re-parked when not selected) awaits its confirm. */
interface InFlight {
  seq: number;
  msg: GetMessage;
  req: PublishRequest;
  replay: boolean;
}

/** Deletes every parked message of the queue: only on an operator's explicit command. */
export async function purgeParked(url: string, queue: string): Promise<number> {
  const { conn, channel, dlq } = await openDlq(url, queue, 'purge');
  try {
    const { messageCount } = await channel.purgeQueue(dlq);
    return messageCount;
  } finally {
    await closeQuietly(conn);
  }
}

/** How many messages are parked (ready) in the queue's DLQ now. */
export async function countParked(url: string, queue: string): Promise<number> {
  const { conn, parked } = await openDlq(url, queue, 'count');
  await closeQuietly(conn);
  return parked;
}
