/** @file
 * A progress line on stderr for long operator commands. On a terminal it is
 * one line rewritten in place (at most every 100 ms) and erased at the end,
 * so stdout keeps only the result; when stderr is a file or a pipe (CI, a
 * log) it writes a plain line every 10 s instead of control characters.
 */

export interface ProgressStream {
  isTTY?: boolean;
  write(text: string): boolean;
}

export class ProgressLine {
  private lastAt = 0;
  private shown = false;
  private readonly everyMs: number;

  constructor(private readonly stream: ProgressStream = process.stderr, private readonly now: () => number = Date.now) {
    this.everyMs = stream.isTTY ? 100 : 10_000;
    // The first line waits one interval: a quick command shows no progress at all.
    this.lastAt = now();
  }

  update(text: string, force = false): void {
    const t = this.now();
    if (!force && t - this.lastAt < this.everyMs) return;
    this.lastAt = t;
    if (this.stream.isTTY) {
      this.stream.write(`\r\x1b[2K${text}`);
      this.shown = true;
    } else {
      this.stream.write(`${text}\n`);
    }
  }

  /** Erases the line on a terminal; the caller prints the summary. */
  end(): void {
    if (this.shown) this.stream.write('\r\x1b[2K');
    this.shown = false;
  }
}

export function bar(done: number, total: number, width = 24): string {
  const filled = total > 0 ? Math.min(width, Math.round((done / total) * width)) : width;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}
