import type { Knex } from 'knex';
import type { MessageType, WarrenMessage } from '../domain/messages';
import type { TracedSpan, Tracing } from '../observability/tracing';
import { headersOf } from './decode';
import type { Delivery, Settlement } from './delivery';
import type { HandlerContext, WorkerDefinition } from './handler';

/**
 * A consumer's spans, when tracing is on: one consumer span per delivery,
 * from its start to its settlement (acked as applied, duplicate or ignored,
 * retried, parked, or given up), the child of the producer span its
 * `traceparent` names; and a handler span per run of the worker's handler,
 * the child of its message's consumer span (of a batch's first, linked to
 * the others). The consumer calls it only when it has one.
 */
export class ConsumeSpans {
  private readonly byDelivery = new Map<Delivery, TracedSpan>();
  // Keyed by the decoded message object, which is what the handler is given.
  private readonly byMessage = new WeakMap<object, TracedSpan>();

  constructor(
    private readonly tracing: Tracing,
    private readonly queue: string,
  ) {}

  /** Its run began. */
  started(delivery: Delivery): void {
    if (this.byDelivery.has(delivery)) return;
    const { msg } = delivery;
    this.byDelivery.set(
      delivery,
      this.tracing.consume({
        queue: this.queue,
        messageId: msg.properties.messageId as string | undefined,
        type: msg.properties.type as string | undefined,
        redelivered: msg.fields.redelivered,
        headers: headersOf(msg),
      }),
    );
  }

  /** It decoded into this message: the handler's run over it is its consumer span's child. */
  decoded(delivery: Delivery, message: WarrenMessage): void {
    const span = this.byDelivery.get(delivery);
    if (span) this.byMessage.set(message, span);
  }

  readonly settled = (s: Settlement): void => {
    const span = this.byDelivery.get(s.delivery);
    if (!span) return;
    this.byDelivery.delete(s.delivery);
    span.set('warren.settlement', s.end);
    if (s.outcome) span.set('warren.outcome', s.outcome);
    if (s.failure) span.set('warren.attempt', s.failure.attempt);
    // A retry or park is the message failing; given up or stale, it is not settled here at all.
    const failed = s.outcome === 'retried' || s.outcome === 'parked' ? (s.failure?.err ?? s.outcome) : s.end !== 'acked' ? (s.why ?? s.end) : undefined;
    span.end(failed === undefined ? undefined : new Error(failed));
  };

  /** The worker with its handler runs traced. */
  handlers<T extends MessageType>(worker: WorkerDefinition<T>): WorkerDefinition<T> {
    const { handleBatch } = worker;
    return {
      ...worker,
      handle: (message, tx, ctx) => this.run(worker.name, [message], () => worker.handle(message, tx, ctx)),
      ...(handleBatch && {
        handleBatch: (messages: WarrenMessage<T>[], tx: Knex.Transaction, ctx: HandlerContext) =>
          this.run(worker.name, messages, () => handleBatch(messages, tx, ctx)),
      }),
    };
  }

  private async run(worker: string, messages: readonly object[], work: () => Promise<void>): Promise<void> {
    const parents = messages.map((m) => this.byMessage.get(m)).filter((s): s is TracedSpan => s !== undefined);
    const span = this.tracing.handler(worker, parents, messages.length);
    try {
      await span.run(work);
      span.end();
    } catch (err) {
      span.end(err);
      throw err;
    }
  }
}
