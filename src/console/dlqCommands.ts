import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline/promises';
import pino from 'pino';
import type { Config } from '../config';
import { countParked, discardParked, DlqError, exportParked, listParked, purgeParked, replayParked, type ParkedMessage, type ReplayResult } from '../ops/dlq';
import { dlqOf } from '../topology/definitions';
import { replaySafeAgeMs } from '../db/inbox';
import type { Logger } from '../log';
import { writeOwnerOnlyFile } from '../ops/exportFile';
import { OperatorError } from '../ops/operatorError';
import { bar, ProgressLine } from '../ops/progress';
import { formatAge, renderTable } from '../ops/table';
import { parkKeyOf } from './actions';
import { auditCliAction, type CliTaken } from './cliAudit';
import { newId } from '../domain/ids';
import { parksOfExport } from './exportedParks';

/**
 * What `warren dlq list|replay|export|purge` print: tables and summaries on
 * stdout, progress on stderr, one line and a non-zero exit on failure. The
 * broker work itself is src/ops/dlq.ts.
 */
type Print = (text: string) => void;

/** Warnings of an operator command go to stderr, so that stdout holds only its result. */
function operatorLog(config: Config): Logger {
  const level = config.log.level === 'info' ? 'warn' : config.log.level;
  return pino({ name: 'dlq', level }, pino.destination(2));
}

/** A UUID's length. */
const MESSAGE_ID_WIDTH = 36;

export function parkedTable(parked: ParkedMessage[], now = Date.now()): string {
  return renderTable(
    // A UUID fits whole; a longer id (another publisher's choice) is cut in its middle, `--json` shows it whole.
    [
      { title: 'MESSAGE ID', maxWidth: MESSAGE_ID_WIDTH, ellipsis: 'middle' },
      { title: 'TYPE', maxWidth: 24 },
      { title: 'KIND' },
      { title: 'ATTEMPTS', align: 'right' },
      { title: 'AGE', align: 'right' },
      { title: 'REASON', maxWidth: 70 },
    ],
    parked.map((p) => [
      p.messageId ?? '(none)',
      p.type ?? '(none)',
      p.kind,
      p.attempts === null ? '-' : String(p.attempts),
      p.lastFailure ? formatAge(now - Date.parse(p.lastFailure)) : '-',
      p.reason ?? '',
    ]),
  );
}

export async function dlqList(config: Config, queue: string, opts: { limit: number; json?: boolean }, print: Print = console.log): Promise<void> {
  const total = await countParked(config.amqp.url, queue);
  const parked = await listParked(config.amqp.url, queue, opts.limit);
  if (opts.json) {
    for (const p of parked) print(JSON.stringify(p));
    return;
  }
  if (parked.length === 0) {
    print(`${dlqOf(queue)} is empty`);
    return;
  }
  print(`${dlqOf(queue)}: ${total} parked${total > parked.length ? `, the first ${parked.length} shown (-n to see more)` : ''}`);
  print(parkedTable(parked));
  if (parked.some((p) => Array.from(p.messageId ?? '').length > MESSAGE_ID_WIDTH))
    print(`(message ids longer than ${MESSAGE_ID_WIDTH} characters are shortened with …; --json shows them whole, for --id)`);
}

export interface ReplayArgs {
  id?: string[];
  limit?: number;
  error?: string;
  all?: boolean;
  json?: boolean;
  /** Replay messages older than their inbox records too (they may be applied twice). */
  allowStale?: boolean;
}

export function describeSelection(a: ReplayArgs): string {
  const parts: string[] = [];
  if (a.id?.length) parts.push(`message id ${a.id.join(', ')}`);
  if (a.error !== undefined) parts.push(`error containing ${JSON.stringify(a.error)}`);
  if (a.limit !== undefined) parts.push(`at most ${a.limit}`);
  return parts.length ? parts.join(', ') : 'every parked message';
}

export function replaySummary(queue: string, r: ReplayResult): string {
  const state = r.interrupted ? 'interrupted: ' : '';
  return `${state}replayed ${r.replayed}, skipped ${r.skipped}, remaining ${r.remaining} in ${dlqOf(queue)}`;
}

/**
 * A first Ctrl-C stops after the messages in flight and prints the summary; a
 * second one exits at once (held messages go back to the DLQ with the
 * connection, and a replayed one is acked only after its confirm).
 */
function interruptible(): { signal: AbortSignal; release: () => void } {
  const ctl = new AbortController();
  const onSignal = () => {
    if (ctl.signal.aborted) process.exit(130);
    process.stderr.write('\nstopping after the messages in flight (Ctrl-C again to quit now; nothing is lost)\n');
    ctl.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: ctl.signal,
    release: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** The one line that says why selected messages stayed parked, and how to replay them anyway. */
export function staleLine(queue: string, stale: number, retentionDays: number): string {
  const age = formatAge(replaySafeAgeMs(retentionDays));
  return (
    `left ${stale} selected message(s) in ${dlqOf(queue)}: older than ${age} (inbox.retentionDays ${retentionDays} less a margin) or of unknown age, ` +
    'so the record that keeps a consumer from applying them twice may be pruned; check them (warren dlq export) and rerun with --allow-stale to replay them anyway'
  );
}

export async function dlqReplay(
  config: Config,
  queue: string,
  args: ReplayArgs,
  print: Print = console.log,
  warn: Print = (line) => process.stderr.write(`${line}\n`),
): Promise<void> {
  const selects = (args.id?.length ?? 0) > 0 || args.limit !== undefined || args.error !== undefined;
  if (!selects && !args.all)
    throw new OperatorError(`say which parked messages of ${dlqOf(queue)} to replay: --id <messageId>, -n <count>, --error <substring>, or --all`, 2);
  const progress = new ProgressLine();
  const stop = interruptible();
  let result: ReplayResult;
  try {
    result = await replayParked(config.amqp.url, queue, {
      ids: args.id,
      limit: args.limit,
      errorContains: args.error,
      staleBefore: args.allowStale ? undefined : Date.now() - replaySafeAgeMs(config.inbox.retentionDays),
      signal: stop.signal,
      publishTimeoutMs: config.relay.publishTimeoutMs,
      log: operatorLog(config),
      onProgress: (p) =>
        progress.update(`replaying ${dlqOf(queue)} ${bar(p.scanned, p.total)} ${p.scanned}/${p.total} looked at, ${p.replayed} replayed, ${p.skipped} skipped`),
    });
  } catch (err) {
    progress.end();
    if (err instanceof DlqError) {
      await audit(config, warn, {
        action: 'dlq replay',
        selection: { queue, ...args },
        count: err.replayed,
        outcome: err.replayed > 0 ? 'partial' : 'failed',
        result: { error: err.message },
      });
      throw new OperatorError(`warren dlq replay: ${err.message}; the rest stays parked`);
    }
    throw err;
  } finally {
    stop.release();
  }
  progress.end();
  if (result.stale) warn(staleLine(queue, result.stale, config.inbox.retentionDays));
  await audit(config, warn, {
    action: 'dlq replay',
    selection: { queue, ...args },
    count: result.replayed,
    outcome: result.interrupted ? 'partial' : 'ok',
    result,
  });
  print(args.json ? JSON.stringify(result) : `${replaySummary(queue, result)} (selected: ${describeSelection(args)})`);
  if (result.interrupted) process.exitCode = 130;
}

/**
 * Writes the parked messages to `file` without removing them, owner-only
 * from the first byte and never through a planted symlink (exportFile.ts).
 */
export async function dlqExport(config: Config, queue: string, opts: { file: string; limit?: number }, print: Print = console.log): Promise<void> {
  const messages = await exportParked(config.amqp.url, queue, opts.limit);
  const file = path.resolve(opts.file);
  const doc = { queue, dlq: dlqOf(queue), exportedAt: new Date().toISOString(), count: messages.length, messages };
  writeOwnerOnlyFile(file, `${JSON.stringify(doc, null, 2)}\n`);
  print(`exported ${messages.length} message(s) of ${dlqOf(queue)} to ${file}; they stay parked`);
}

/** Writes the command into the console's audit log (src/console/cliAudit.ts); a failure to is a warning, never the command's failure. */
async function audit(config: Config, warn: Print, entry: Parameters<typeof auditCliAction>[1], taken?: CliTaken): Promise<void> {
  const problem = await auditCliAction(config, entry, Date.now(), taken);
  if (problem) warn(`warren dlq: ${problem}`);
}

export interface Prompt {
  isTTY: boolean;
  ask(question: string): Promise<string>;
}

export function terminalPrompt(): Prompt {
  return {
    isTTY: Boolean(process.stdin.isTTY),
    async ask(question: string) {
      const rl = readline.createInterface({ input: process.stdin, output: process.stderr });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },
  };
}

/**
 * Deletes every parked message: with --yes, or after the operator types the
 * queue name on a terminal. Without a terminal and without --yes it refuses
 * (a script must say so explicitly).
 */
export async function dlqPurge(
  config: Config,
  queue: string,
  opts: { yes?: boolean },
  prompt: Prompt = terminalPrompt(),
  print: Print = console.log,
): Promise<void> {
  const dlq = dlqOf(queue);
  if (!opts.yes) {
    if (!prompt.isTTY) throw new OperatorError(`warren dlq purge deletes every message parked in ${dlq}; not on a terminal, so run it with --yes`, 2);
    const parked = await countParked(config.amqp.url, queue);
    if (parked === 0) {
      print(`${dlq} is empty; nothing to purge`);
      return;
    }
    const answer = await prompt.ask(
      `Delete all ${parked} message(s) parked in ${dlq}? They cannot be replayed afterwards (warren dlq export saves them). Type ${dlq} to confirm: `,
    );
    if (answer.trim() !== dlq) throw new OperatorError(`not confirmed; ${dlq} left as it was`);
  }
  const count = await purgeParked(config.amqp.url, queue);
  await audit(config, (line) => process.stderr.write(`${line}\n`), {
    action: 'dlq purge',
    selection: { queue },
    count,
    outcome: 'ok',
    result: { purged: count },
  });
  print(`purged ${count} message(s) from ${dlq}`);
}

/**
 * `warren dlq summary`: parked messages grouped by queue, kind and
 * normalised reason, from the console's index (so nothing in a DLQ is
 * taken or reordered to count it); parks the console has not indexed yet
 * (it is stopped) are not in it.
 */
export async function dlqSummary(config: Config, opts: { json?: boolean }, print: Print = console.log): Promise<void> {
  const { openDatabase } = await import('../db/knex.js');
  const { summariseParked } = await import('../console/summary.js');
  const { PARKED_TABLE } = await import('../db/migrations/console.js');
  const db = openDatabase(config, 'console');
  try {
    if (!(await db.schema.hasTable(PARKED_TABLE)))
      throw new OperatorError("the console's database has no tables yet: run warren migrate, then warren console to index parked messages");
    const groups = await summariseParked(db);
    if (opts.json) {
      for (const g of groups) print(JSON.stringify({ ...g, oldest: new Date(g.oldest).toISOString(), newest: new Date(g.newest).toISOString() }));
      return;
    }
    if (groups.length === 0) {
      print('nothing parked (as the console has indexed it)');
      return;
    }
    const now = Date.now();
    print(
      renderTable(
        [
          { title: 'QUEUE' },
          { title: 'KIND' },
          { title: 'COUNT', align: 'right' },
          { title: 'OLDEST', align: 'right' },
          { title: 'NEWEST', align: 'right' },
          { title: 'REASON', maxWidth: 80 },
        ],
        groups.map((g) => [g.queue, g.kind, String(g.count), formatAge(now - g.oldest), formatAge(now - g.newest), g.reason]),
      ),
    );
  } finally {
    await db.destroy();
  }
}

const stderrLine: Print = (line) => process.stderr.write(`${line}\n`);

export interface DiscardArgs {
  id?: string[];
  error?: string;
  reason: string;
  json?: boolean;
}

/**
 * `warren dlq discard <queue> --id/--error --reason`: deletes the selected
 * parked messages from the DLQ (src/ops/dlq.ts's discardParked: every other
 * one stays parked, in order), audited with the reason, and their rows in
 * the console's index marked discarded.
 */
export async function dlqDiscard(config: Config, queue: string, args: DiscardArgs, print: Print = console.log, warn: Print = stderrLine): Promise<void> {
  if (!args.id?.length && args.error === undefined)
    throw new OperatorError(
      `say which parked messages of ${dlqOf(queue)} to discard: --id <messageId> or --error <substring> (warren dlq purge deletes them all)`,
      2,
    );
  if (args.reason.trim() === '') throw new OperatorError('say why they are discarded: --reason <text>', 2);
  const actionId = newId();
  const parkKeys: string[] = [];
  const selection = { queue, ids: args.id, error: args.error, reason: args.reason };
  const progress = new ProgressLine();
  let result: ReplayResult;
  try {
    result = await discardParked(config.amqp.url, queue, {
      ids: args.id,
      errorContains: args.error,
      publishTimeoutMs: config.relay.publishTimeoutMs,
      log: operatorLog(config),
      onTaken: (msg) => parkKeys.push(parkKeyOf(queue, msg)),
      onProgress: (p) =>
        progress.update(`discarding from ${dlqOf(queue)} ${bar(p.scanned, p.total)} ${p.scanned}/${p.total} looked at, ${p.replayed} discarded`),
    });
  } catch (err) {
    progress.end();
    if (err instanceof DlqError) {
      await audit(
        config,
        warn,
        { action: 'dlq discard', selection, count: parkKeys.length, outcome: parkKeys.length > 0 ? 'partial' : 'failed', result: { error: err.message } },
        { parkKeys, status: 'discarded', actionId },
      );
      throw new OperatorError(`warren dlq discard: ${err.message}; the rest stays parked`);
    }
    throw err;
  }
  progress.end();
  await audit(
    config,
    warn,
    { action: 'dlq discard', selection, count: result.replayed, outcome: 'ok', result: { discarded: result.replayed, remaining: result.remaining } },
    { parkKeys, status: 'discarded', actionId },
  );
  print(
    args.json
      ? JSON.stringify({ discarded: result.replayed, remaining: result.remaining })
      : `discarded ${result.replayed}, remaining ${result.remaining} in ${dlqOf(queue)} (selected: ${describeSelection(args)})`,
  );
}

export interface FileReplayArgs {
  /** Only the file's messages of this queue. */
  queue?: string;
  allowStale?: boolean;
  json?: boolean;
}

export interface FileReplayResult {
  /** In the file (of `queue`, when given). */
  listed: number;
  replayed: number;
  /** Listed, still parked, left there as older than the inbox retention. */
  stale: number;
  /** Listed, no longer in their DLQ (replayed or discarded since the export). */
  notFound: number;
  byQueue: Record<string, number>;
}

/**
 * `warren dlq replay --from-file <export>`: replays exactly the messages an
 * export lists (the console's, or warren dlq export's) that are still
 * parked, taking each from its DLQ as any replay does (its copy confirmed
 * before the original is acked, the rest left parked in order, the
 * late-replay refusal); the file's own copies are never published, so a
 * message replayed or discarded since the export is not sent twice.
 */
export async function dlqReplayFromFile(
  config: Config,
  file: string,
  args: FileReplayArgs,
  print: Print = console.log,
  warn: Print = stderrLine,
): Promise<FileReplayResult> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new OperatorError(`warren dlq replay: cannot read ${file}: ${(err as Error).message}`, 2);
  }
  const byQueue = new Map<string, Set<string>>();
  for (const p of parksOfExport(text, file)) {
    if (args.queue !== undefined && p.queue !== args.queue) continue;
    byQueue.set(p.queue, (byQueue.get(p.queue) ?? new Set()).add(p.parkKey));
  }
  const listed = [...byQueue.values()].reduce((n, keys) => n + keys.size, 0);
  if (listed === 0) throw new OperatorError(`warren dlq replay: ${file} lists no parked message${args.queue ? ` of ${args.queue}` : ''}`, 2);
  const actionId = newId();
  const taken: string[] = [];
  const result: FileReplayResult = { listed, replayed: 0, stale: 0, notFound: 0, byQueue: {} };
  const selection = { fromFile: path.resolve(file), messages: listed, queues: [...byQueue.keys()], allowStale: Boolean(args.allowStale) };
  const progress = new ProgressLine();
  const stop = interruptible();
  let failure: string | undefined;
  try {
    for (const [queue, keys] of byQueue) {
      if (stop.signal.aborted) break;
      const r = await replayParked(config.amqp.url, queue, {
        matches: (msg) => keys.has(parkKeyOf(queue, msg)),
        onTaken: (msg) => taken.push(parkKeyOf(queue, msg)),
        staleBefore: args.allowStale ? undefined : Date.now() - replaySafeAgeMs(config.inbox.retentionDays),
        replayId: actionId,
        signal: stop.signal,
        publishTimeoutMs: config.relay.publishTimeoutMs,
        log: operatorLog(config),
        onProgress: (p) => progress.update(`replaying ${dlqOf(queue)} ${bar(p.scanned, p.total)} ${p.scanned}/${p.total} looked at, ${p.replayed} replayed`),
      });
      progress.end();
      result.replayed += r.replayed;
      result.stale += r.stale ?? 0;
      result.byQueue[queue] = r.replayed;
      if (r.stale) warn(staleLine(queue, r.stale, config.inbox.retentionDays));
    }
  } catch (err) {
    progress.end();
    if (!(err instanceof DlqError)) throw err;
    failure = err.message;
  } finally {
    stop.release();
  }
  result.replayed = taken.length;
  result.notFound = failure || stop.signal.aborted ? 0 : listed - result.replayed - result.stale;
  const outcome = failure || stop.signal.aborted ? (taken.length > 0 ? 'partial' : 'failed') : 'ok';
  await audit(
    config,
    warn,
    { action: 'dlq replay', selection, count: taken.length, outcome, result: { ...result, ...(failure ? { error: failure } : {}) } },
    { parkKeys: taken, status: 'replayed', actionId },
  );
  if (failure) throw new OperatorError(`warren dlq replay: ${failure}; the rest stays parked`);
  print(
    args.json
      ? JSON.stringify(result)
      : `replayed ${result.replayed} of the ${listed} message(s) ${file} lists${result.stale ? `, ${result.stale} left parked as too old` : ''}${result.notFound ? `, ${result.notFound} no longer parked` : ''}`,
  );
  if (stop.signal.aborted) process.exitCode = 130;
  return result;
}

/** `warren dlq replay [queue]`: by a selection of one queue, or `--from-file`. */
export async function dlqReplayCommand(config: Config, queue: string | undefined, opts: ReplayArgs & { fromFile?: string }): Promise<void> {
  const { fromFile, ...selection } = opts;
  if (fromFile !== undefined) {
    if (selection.id?.length || selection.limit !== undefined || selection.error !== undefined || selection.all)
      throw new OperatorError('--from-file selects the messages itself: give it without --id, -n, --error or --all', 2);
    await dlqReplayFromFile(config, fromFile, { queue, allowStale: selection.allowStale, json: selection.json });
  } else if (queue === undefined) throw new OperatorError('say which work queue to replay (e.g. analytics.tweets), or give --from-file <export>', 2);
  else await dlqReplay(config, queue, selection);
}
