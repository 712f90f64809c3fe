/** @file
 * Plain-text tables for operator commands: columns padded to their widest
 * cell, numbers right-aligned, readable in a terminal and in a pasted log.
 */

export type Align = 'left' | 'right';

export interface Column {
  title: string;
  align?: Align;
  /** Cells longer than this are cut with an ellipsis (error texts, ids a foreign publisher chose). */
  maxWidth?: number;
  /** Where a long cell loses characters: at its end (default), or in its middle, which keeps an id's both ends recognisable. */
  ellipsis?: 'end' | 'middle';
}

function cut(text: string, max: number | undefined, where: Column['ellipsis'] = 'end'): string {
  // By code point, so that a cut never splits a surrogate pair.
  const chars = Array.from(text);
  if (max === undefined || chars.length <= max) return text;
  const keep = Math.max(0, max - 1);
  if (where === 'middle') {
    const head = Math.ceil(keep / 2);
    return `${chars.slice(0, head).join('')}…${chars.slice(chars.length - (keep - head)).join('')}`;
  }
  return `${chars.slice(0, keep).join('')}…`;
}

/**
 * What a cell may show: whitespace runs become one space and other control
 * characters `?`, so that a message id or error text from another publisher
 * can neither break a row nor send escape sequences to the operator's terminal.
 */
function printable(text: string): string {
  return text.replace(/\s+/g, ' ').replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069]/g, '?');
}

export function renderTable(columns: Column[], rows: string[][]): string {
  const cells = rows.map((row) => columns.map((c, i) => cut(printable(row[i] ?? ''), c.maxWidth, c.ellipsis)));
  const width = (cell: string) => Array.from(cell).length;
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((r) => width(r[i]!))));
  const pad = (cell: string, i: number) => ' '.repeat(widths[i]! - width(cell));
  const line = (row: string[]) =>
    row
      .map((cell, i) => (columns[i]!.align === 'right' ? pad(cell, i) + cell : cell + pad(cell, i)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.title)), ...cells.map(line)].join('\n');
}

/** `42s`, `17m`, `5h`, `3d`: how long ago, at a glance. */
export function formatAge(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '-';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** A message rate per second as the management API reports it: `0`, `0.4`, `12`, `1,204`. */
export function formatRate(rate: number | undefined): string {
  if (rate === undefined) return '-';
  if (rate === 0) return '0';
  return rate < 10 ? rate.toFixed(1) : Math.round(rate).toLocaleString('en-US');
}

export function formatCount(n: number | undefined): string {
  return n === undefined ? '-' : n.toLocaleString('en-US');
}
