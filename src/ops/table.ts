/**
 * Plain-text tables for operator commands: columns padded to their widest
 * cell, numbers right-aligned, readable in a terminal and in a pasted log.
 */
export type Align = 'left' | 'right';

export interface Column {
  title: string;
  align?: Align;
  /** Cells longer than this are cut with an ellipsis (error texts). */
  maxWidth?: number;
}

function cut(text: string, max: number | undefined): string {
  if (max === undefined || text.length <= max) return text;
  return `${text.slice(0, Math.max(0, max - 1))}…`;
}

export function renderTable(columns: Column[], rows: string[][]): string {
  const cells = rows.map((row) => columns.map((c, i) => cut((row[i] ?? '').replace(/\s+/g, ' '), c.maxWidth)));
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((r) => r[i]!.length)));
  const line = (row: string[]) =>
    row
      .map((cell, i) => (columns[i]!.align === 'right' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
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
