/** @file
 * Server-Sent Events as the WHATWG spec reads them: fields are lines, an
 * event ends at a blank line, a line starting with `:` is a comment. A line
 * ends at CR, LF or CRLF, so a value holding one is split into several
 * `data:` lines (which the client joins with LF) and never smuggles a field.
 */

export interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

const LINE_BREAK = /\r\n|\r|\n/;

function singleLine(name: string, value: string): string {
  if (LINE_BREAK.test(value)) throw new Error(`an SSE ${name} cannot hold a line break`);
  return value;
}

export function formatEvent(e: SseEvent): string {
  let out = '';
  if (e.id !== undefined) {
    // The client keeps the id as its Last-Event-ID; one with NUL is ignored by the spec, so it is refused here.
    if (e.id.includes('\0')) throw new Error('an SSE id cannot hold NUL');
    out += `id: ${singleLine('id', e.id)}\n`;
  }
  if (e.event !== undefined) out += `event: ${singleLine('event', e.event)}\n`;
  for (const line of e.data.split(LINE_BREAK)) out += `data: ${line}\n`;
  return `${out}\n`;
}

/** A comment keeps idle proxies and the client's connection alive; clients ignore it. */
export function formatComment(text: string): string {
  return (
    text
      .split(LINE_BREAK)
      .map((line) => `: ${line}\n`)
      .join('') + '\n'
  );
}

/** How long a client waits before reconnecting (the `retry:` field). */
export function formatRetry(ms: number): string {
  return `retry: ${Math.max(0, Math.floor(ms))}\n\n`;
}
