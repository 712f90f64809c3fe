/** @file
 * Equality of JSON values as the broker and the definitions file hold them:
 * object keys compared in sorted order, since the broker does not answer in
 * the definitions' key order. One function for every topology comparison.
 */

export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonical(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export const same = (a: unknown, b: unknown): boolean => canonical(a) === canonical(b);
