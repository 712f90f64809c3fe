/** @file Tweet text and handle rules, as a person counts them. */

export const TWEET_MAX_CHARS = 280;
export const TWEET_MAX_BYTES = 8192;
export const HANDLE_PATTERN = /^[A-Za-z0-9_]{3,30}$/;

const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** Extended grapheme clusters: a flag or a family emoji is one character. */
export function countGraphemes(text: string): number {
  let n = 0;
  for (const _ of segmenter.segment(text)) n++;
  return n;
}

export function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/**
 * Text must survive storage unchanged. PostgreSQL refuses NUL in a text
 * column (a 500 there, while SQLite keeps it), and a lone UTF-16 surrogate
 * (valid as a JSON escape) has no UTF-8 form, so it would be stored as U+FFFD.
 */
export function unstorableTextReason(text: string): string | undefined {
  if (text.includes('\u0000')) return 'must not contain NUL characters';
  if (/\p{Cs}/u.test(text)) return 'must be well-formed Unicode (no lone surrogates)';
  return undefined;
}

export type TextCheck = { ok: true; text: string } | { ok: false; message: string };

/** NFC-normalises and checks tweet text: 1-280 characters, at most 8,192 UTF-8 bytes. */
export function checkTweetText(raw: string): TextCheck {
  const text = raw.normalize('NFC');
  const unstorable = unstorableTextReason(text);
  if (unstorable) return { ok: false, message: unstorable };
  if (text.trim().length === 0) return { ok: false, message: 'must not be empty' };
  if (utf8Bytes(text) > TWEET_MAX_BYTES) return { ok: false, message: `must be at most ${TWEET_MAX_BYTES} UTF-8 bytes` };
  // Every character is at least one UTF-16 code unit, so a text of at most
  // 280 units is within the limit: only a longer one is segmented, the
  // costliest step of accepting a tweet.
  if (text.length <= TWEET_MAX_CHARS) return { ok: true, text };
  const chars = countGraphemes(text);
  if (chars > TWEET_MAX_CHARS) return { ok: false, message: `must be at most ${TWEET_MAX_CHARS} characters (has ${chars})` };
  return { ok: true, text };
}

/** Handles are unique regardless of case; this is the key they are compared by. */
export function handleKey(handle: string): string {
  return handle.toLowerCase();
}

const HASHTAG = /(?:^|[^\p{L}\p{N}_&])#([\p{L}\p{N}_]{1,100})/gu;
const MENTION = /(?:^|[^\p{L}\p{N}_@])@([A-Za-z0-9_]{3,30})(?![A-Za-z0-9_])/gu;

/** Hashtags, case-folded, each once per tweet. `#Node` and `#node` are one tag. */
export function extractHashtags(text: string): string[] {
  const tags = new Set<string>();
  for (const m of text.matchAll(HASHTAG)) tags.add(m[1]!.normalize('NFC').toLowerCase());
  return [...tags];
}

/** Mentioned handles, case-folded, each once per tweet. */
export function extractMentions(text: string): string[] {
  const handles = new Set<string>();
  for (const m of text.matchAll(MENTION)) handles.add(m[1]!.toLowerCase());
  return [...handles];
}
