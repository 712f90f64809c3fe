import { copiedProperties, PublishError, type ConfirmPublisher, type PublishRequest } from '../broker/publisher';
import { newId } from '../domain/ids';
import { PARK_EXCHANGE } from '../topology/definitions';
import { deliveryLogger, type Logger } from '../log';
import { attemptOf, headersOf } from './decode';
import type { Delivery } from './delivery';
import { decideFailure, errorText, failureHeaders, withOnlyWarrenHeaders, type DelayStep, type ParkKind } from './retry';

/** A retry or park the broker refuses is tried again at most this far apart. */
const MAX_REPUBLISH_DELAY_MS = 10_000;

export interface FailurePolicyOptions {
  publisher: ConfirmPublisher;
  /** The queue the deliveries came from: their retries come back to it, their parks go to its DLQ. */
  queue: string;
  maxAttempts: number;
  steps: DelayStep[];
  log: Logger;
  now(): Date;
}

/**
 * Retry and park, one stage. A delivery that failed (its handler, or it
 * could not be decoded) is copied to its delay queue, or parked in its
 * queue's DLQ, as decideFailure says from the error and the attempt; it is
 * acked only once the broker confirmed that copy, so the message is never
 * in neither place.
 */
export class FailurePolicy {
  /** Copies not confirmed yet, each holding its original unacked: why each failed last. */
  private readonly refused = new Map<symbol, string>();

  constructor(private readonly opts: FailurePolicyOptions) {}

  /** Why each copy the broker keeps refusing failed last (a worker is not ready while there are any). */
  refusals(): string[] {
    return [...this.refused.values()];
  }

  /** Retries with backoff or parks a handled delivery, then acks it; gives it up if its channel closes first. */
  async settle(delivery: Delivery, error: unknown): Promise<void> {
    const { msg } = delivery;
    const { queue, maxAttempts, steps } = this.opts;
    const attempt = attemptOf(msg);
    const decision = decideFailure(error, attempt, maxAttempts, steps);
    const record = { error, attempt, queue, exchange: msg.fields.exchange, routingKey: msg.fields.routingKey, now: this.opts.now() };
    const kind: ParkKind | undefined = decision.action === 'park' ? decision.kind : undefined;
    const request: PublishRequest = {
      exchange: decision.action === 'retry' ? decision.step.exchange : PARK_EXCHANGE,
      routingKey: queue,
      content: msg.content,
      // A message parked for lacking a message_id gets one, so its park can be confirmed.
      properties: copiedProperties(
        msg.properties,
        (msg.properties.messageId as string | undefined) ?? `missing-${newId()}`,
        failureHeaders(headersOf(msg), record, kind),
      ),
    };
    if (!(await this.publishUntilConfirmed(delivery, request))) {
      delivery.giveUp('its channel closed before its retry or park copy was confirmed: the broker requeued it');
      return;
    }
    const err = errorText(error);
    if (decision.action === 'retry') delivery.ack('retried', { attempt, delay: decision.step.name, err });
    else delivery.ack('parked', { attempt, kind: decision.kind, err });
  }

  /**
   * A copy that is not confirmed (returned, nacked, broker away) leaves the
   * original unacked and is tried again while its channel lives; until then
   * the consumer reports it cannot retry or park.
   */
  private async publishUntilConfirmed(delivery: Delivery, copy: PublishRequest): Promise<boolean> {
    let request = copy;
    const attempt = Symbol(request.properties.messageId);
    let delay = 500;
    try {
      for (;;) {
        if (delivery.channel.closed) return false;
        try {
          await this.opts.publisher.publish(request);
          return true;
        } catch (err) {
          this.refused.set(attempt, `${request.exchange}: ${(err as Error).message}`);
          const { messageId } = request.properties;
          deliveryLogger(this.opts.log, request.properties).error(
            { messageId, exchange: request.exchange, routingKey: request.routingKey, err },
            'retry/park publish failed; original kept unacked',
          );
          // The same copy would fail the same way for ever.
          if (err instanceof PublishError && err.reason === 'unencodable') {
            request = { ...request, properties: { ...request.properties, headers: withOnlyWarrenHeaders(request.properties.headers ?? {}, err.message) } };
          }
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, MAX_REPUBLISH_DELAY_MS);
        }
      }
    } finally {
      this.refused.delete(attempt);
    }
  }
}
