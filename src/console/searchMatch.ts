/** @file
 * The trigram half of search on SQLite, pure: the FTS5 query that finds
 * every row whose search text could contain a phrase. A row that contains
 * the phrase contains each of its trigrams, so the rows this selects are a
 * superset of the matches, never missing one; the LIKE on search_text
 * (parkedQuery.ts) then keeps only the rows that hold the phrase itself.
 */

/** Trigrams per query at most: any subset of a phrase's trigrams still selects a superset, and a few rare ones narrow it as well as all. */
const MAX_TRIGRAMS = 24;

/** The distinct runs of three characters (code points, as FTS5's trigram tokenizer counts them) of the text, first seen first. */
export function trigramsOf(text: string): string[] {
  const chars = Array.from(text);
  const seen = new Set<string>();
  for (let i = 0; i + 3 <= chars.length; i++) seen.add(chars.slice(i, i + 3).join(''));
  return [...seen];
}

/** Evenly spread over the phrase, so a long phrase still asks for its start, middle and end. */
function spread(items: string[], max: number): string[] {
  if (items.length <= max) return items;
  return Array.from({ length: max }, (_, k) => items[Math.floor((k * (items.length - 1)) / (max - 1))]!);
}

/**
 * An FTS5 MATCH expression over the trigram table: each trigram a quoted
 * one-token phrase (a `"` doubled inside), all of them required. Undefined
 * for a phrase shorter than three characters, which no trigram index can
 * narrow: such a search reads every row, as LIKE alone does.
 */
export function trigramMatch(phrase: string): string | undefined {
  const trigrams = trigramsOf(phrase);
  if (trigrams.length === 0) return undefined;
  return spread(trigrams, MAX_TRIGRAMS)
    .map((t) => `"${t.replace(/"/g, '""')}"`)
    .join(' AND ');
}
