import type { ConsumeMessage } from 'amqplib';
import { PermanentError } from '../domain/errors';
import { decodeDelivery, type MessageType, type WarrenMessage } from '../domain/messages';
import { foreignHeaderProblem, trustedHeaders } from './foreignHeaders';
import { previousAttempts } from './retry';

/** A message for this worker; one of a type it does not handle (acked, changes nothing); or one it can never take. */
export type Decoded = { kind: 'message'; message: WarrenMessage } | { kind: 'ignored' } | { kind: 'rejected'; error: unknown };

/**
 * What a delivery is to a worker that handles `handles`. Pure: a message it
 * cannot take comes back as a decision (the failure policy parks it, its
 * error being permanent), never as a copy already under way.
 */
export function decode(msg: ConsumeMessage, handles: readonly MessageType[]): Decoded {
  try {
    const decoded = decodeDelivery(rawDelivery(msg), handles);
    if (decoded.kind === 'unhandled') return { kind: 'ignored' };
    // Its retry or park copy could not carry such headers: parked now, with them left out.
    const headerProblem = foreignHeaderProblem(msg.properties.headers ?? {});
    if (headerProblem) throw new PermanentError(headerProblem);
    return { kind: 'message', message: decoded.message };
  } catch (error) {
    return { kind: 'rejected', error };
  }
}

/** Its headers, x-warren-* ones only when Warren wrote them (src/consume/foreignHeaders.ts). */
export function headersOf(msg: ConsumeMessage): Record<string, unknown> {
  return trustedHeaders(msg.properties.headers ?? {}, msg.fields.exchange);
}

/** This delivery's attempt: 1 for a first delivery, one more than its retry copy says for a retry. */
export function attemptOf(msg: ConsumeMessage): number {
  return previousAttempts(headersOf(msg)) + 1;
}

function rawDelivery(msg: ConsumeMessage) {
  const p = msg.properties;
  return {
    content: msg.content,
    contentType: p.contentType as string | undefined,
    contentEncoding: p.contentEncoding as string | undefined,
    messageId: p.messageId as string | undefined,
    type: p.type as string | undefined,
    correlationId: p.correlationId as string | undefined,
    timestamp: p.timestamp as number | undefined,
    headers: (p.headers ?? {}) as Record<string, unknown>,
  };
}
