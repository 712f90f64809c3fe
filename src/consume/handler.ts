import type { Knex } from 'knex';
import type { MessageType, WarrenMessage } from '../domain/messages';
import type { Logger } from '../log';

export interface HandlerContext {
  log: Logger;
  now(): Date;
  /**
   * Runs `fn` once the transaction holding this message has committed (never
   * if it rolls back). Best effort, for what may be lost but must never run
   * for an effect that did not happen (a live push): an error is logged and
   * changes nothing about the message, which is acked either way.
   */
  afterCommit(fn: () => void | Promise<void>): void;
  /**
   * Aborted (with a HandlerTimeoutError as its reason) once the handler has
   * run past `worker.handlerTimeoutMs`: its transaction is rolled back and
   * the message retried, so a handler that waits on anything (a query, a
   * call) should pass the signal on or check it, and stop.
   */
  signal: AbortSignal;
}

/**
 * A worker is a plain handler plus the queue it consumes. The handler gets a
 * validated, typed message and a database transaction and does its work in
 * it; it knows nothing of channels, acks, retries or DLQs
 * (src/consume/consumer.ts owns those, once, for every worker).
 * Throw PermanentError for a message that can never succeed; any other error
 * is retried with backoff. What a worker needs around this (its database,
 * broker user, defaults, collaborators) is its declaration, src/workers/declaration.ts.
 */
export interface WorkerDefinition<T extends MessageType = MessageType> {
  /** CLI name (`warren worker <name>`) and inbox consumer name. */
  name: string;
  /** The work queue it consumes. */
  queue: string;
  /** Its queue's own bindings, re-applied on every (re)connect. */
  bindings: { exchange: string; routingKey: string }[];
  /** The types it handles; other known types are acked and counted as ignored. */
  handles: readonly T[];
  handle(message: WarrenMessage<T>, tx: Knex.Transaction, ctx: HandlerContext): Promise<void>;
  /**
   * Optional: the effect of several messages at once, with the same result
   * as `handle` on each of them in the order given (set-based: a few
   * statements for the whole batch instead of a few per message). It gets
   * only messages not applied before, each once. If it throws, nothing of
   * the batch is kept and every message is handled again alone with
   * `handle`, so an error need not say which message caused it.
   */
  handleBatch?(messages: WarrenMessage<T>[], tx: Knex.Transaction, ctx: HandlerContext): Promise<void>;
}
