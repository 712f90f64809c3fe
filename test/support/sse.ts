/** @file
 * A minimal Server-Sent Events client for tests (Node has no EventSource):
 * opens the stream with fetch, parses events as they arrive, and can be
 * awaited until some event shows up.
 */

export interface ReceivedEvent {
  id?: string;
  event?: string;
  data: string;
}

export class SseClient {
  readonly events: ReceivedEvent[] = [];
  readonly comments: string[] = [];
  retryMs: number | undefined;
  /** Resolves when the server ends the stream (or the client aborts). */
  readonly ended: Promise<void>;
  private readonly controller: AbortController;
  private buffer = '';
  private waiters: (() => void)[] = [];

  private constructor(
    readonly status: number,
    readonly headers: Headers,
    body: ReadableStream<Uint8Array> | null,
    controller: AbortController,
  ) {
    this.controller = controller;
    this.ended = this.read(body);
  }

  static async open(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
    const controller = new AbortController();
    const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
    return new SseClient(res.status, res.headers, res.body, controller);
  }

  private async read(body: ReadableStream<Uint8Array> | null): Promise<void> {
    if (!body) return;
    const decoder = new TextDecoder();
    try {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        this.buffer += decoder.decode(chunk, { stream: true });
        this.parse();
      }
    } catch {
      // aborted by close(), or the connection was cut: either way the stream has ended
    } finally {
      this.wake();
    }
  }

  private parse(): void {
    for (let end = this.buffer.indexOf('\n\n'); end >= 0; end = this.buffer.indexOf('\n\n')) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const event: ReceivedEvent = { data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          this.comments.push(line.slice(1).trim());
          continue;
        }
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') event.id = value;
        else if (field === 'event') event.event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'retry') this.retryMs = Number(value);
      }
      if (data.length > 0) {
        event.data = data.join('\n');
        this.events.push(event);
      }
    }
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  /** The notifications received, parsed. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a notification's data is whatever JSON the API sent; tests assert on it field by field
  notifications(): any[] {
    return this.events.filter((e) => e.event === 'notification').map((e) => JSON.parse(e.data));
  }

  /** Waits until `probe` holds for what has arrived (checked after every chunk). */
  async waitUntil(what: string, probe: (client: SseClient) => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let ended = false;
    void this.ended.then(() => (ended = true));
    while (!probe(this)) {
      const left = deadline - Date.now();
      if (left <= 0 || ended)
        throw new Error(`${ended ? 'stream ended' : `timed out after ${timeoutMs} ms`} waiting for ${what}; got ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    this.controller.abort();
    return this.ended;
  }
}
