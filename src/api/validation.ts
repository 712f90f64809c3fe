import { z } from 'zod';
import { ValidationError, type FieldIssue } from '../domain/errors';
import { isUuid } from '../domain/ids';
import { HANDLE_PATTERN, TWEET_MAX_BYTES, TWEET_MAX_CHARS, unstorableTextReason } from '../domain/text';

/**
 * One zod schema per request body and query. Bodies are strict: a field the
 * API does not know is a client mistake worth a 400, not something to drop.
 */
const handle = z
  .string()
  .regex(HANDLE_PATTERN, 'must be 3-30 characters of A-Z, a-z, 0-9 and _')
  .meta({ description: '3-30 characters of A-Z, a-z, 0-9 and _, unique regardless of case' });
// Free text that the database stores exactly as sent (no NUL, no lone surrogate).
const storableText = z.string().superRefine((s, ctx) => {
  const reason = unstorableTextReason(s);
  if (reason) ctx.addIssue({ code: 'custom', message: reason });
});
// Counted in UTF-16 units, never fewer than the database's characters, so the column always fits.
// The lengths are stated again as JSON Schema keywords (which count code points of the text as sent) for the
// OpenAPI document: the transform hides the piped checks from it.
const displayName = storableText
  .transform((s) => s.normalize('NFC'))
  .pipe(
    z
      .string()
      .min(1, 'must not be empty')
      .max(100, 'must be at most 100 characters')
      .refine((s) => s.trim() !== '', 'must not be blank'),
  )
  .meta({ description: '1-100 characters (UTF-16 units, after NFC), not blank', minLength: 1, maxLength: 100, pattern: '\\S' });
const bio = storableText
  .transform((s) => s.normalize('NFC'))
  .pipe(z.string().max(500, 'must be at most 500 characters'))
  .meta({ description: 'at most 500 characters (UTF-16 units, after NFC)', maxLength: 500 });

export const createUserBody = z.strictObject({ handle, displayName, bio: bio.optional() });
export type CreateUserBody = z.infer<typeof createUserBody>;

export const patchUserBody = z
  .strictObject({ handle: handle.optional(), displayName: displayName.optional(), bio: bio.nullable().optional() })
  .refine((b) => Object.keys(b).length > 0, 'must change at least one of handle, displayName, bio');
export type PatchUserBody = z.infer<typeof patchUserBody>;

/** Length and normalisation are checked by checkTweetText (graphemes, bytes), not here. */
export const createTweetBody = z.strictObject({
  text: z.string().meta({
    description:
      `1-${TWEET_MAX_CHARS} characters counted as a person counts them (extended grapheme clusters, after NFC), at most ${TWEET_MAX_BYTES} UTF-8 bytes, ` +
      'not only whitespace. JSON Schema cannot count graphemes or bytes: maxLength is the byte limit in code points, the most any valid text can have',
    minLength: 1,
    maxLength: TWEET_MAX_BYTES,
    pattern: '\\S',
  }),
});
export type CreateTweetBody = z.infer<typeof createTweetBody>;

export const LIST_LIMIT = { min: 1, max: 100, default: 20 } as const;

/**
 * A query parameter arrives as text; the OpenAPI document describes it as
 * the integer it is parsed into (`openapi` replaces the generated schema).
 */
const limit = z
  .string()
  .regex(/^[0-9]{1,3}$/, 'must be an integer from 1 to 100')
  .transform(Number)
  .pipe(z.number().int().min(LIST_LIMIT.min, 'must be an integer from 1 to 100').max(LIST_LIMIT.max, 'must be an integer from 1 to 100'))
  .meta({
    description: `an integer from ${LIST_LIMIT.min} to ${LIST_LIMIT.max} (default ${LIST_LIMIT.default})`,
    openapi: { type: 'integer', minimum: LIST_LIMIT.min, maximum: LIST_LIMIT.max, default: LIST_LIMIT.default },
  });

export const listQuery = z.strictObject({
  limit: limit.default(LIST_LIMIT.default),
  before: z.string().optional().meta({ description: 'the nextCursor of the previous page' }),
});
export type ListQuery = z.infer<typeof listQuery>;

/** Top-N lists are not paged: only `limit`. */
export const topQuery = z.strictObject({ limit: limit.default(LIST_LIMIT.default) });

/**
 * The `id:` of the last event a client received: a stream position (digits),
 * or a notification id (a UUID) from before streams sent positions.
 */
export const STREAM_POSITION_PATTERN = /^(?:[0-9]{1,15}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/;

const notificationId = z
  .string()
  .regex(STREAM_POSITION_PATTERN, 'must be the id of an event this stream sent')
  .meta({ description: 'the `id:` of the last event received: the stream first sends the stored notifications after it' });

/**
 * Where a notification stream resumes: the `Last-Event-ID` header a
 * reconnecting EventSource sends, or the `lastEventId` query parameter for
 * a first connection (an EventSource cannot set headers).
 */
export const streamQuery = z.strictObject({ lastEventId: notificationId.optional() });
export const streamHeaders = z.object({ 'last-event-id': notificationId.optional() });

function issuesToDetails(issues: z.core.$ZodIssue[]): FieldIssue[] {
  return issues.flatMap((issue): FieldIssue[] => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: [...issue.path, key].join('.'), message: 'is not a known field' }));
    }
    return [{ path: issue.path.map(String).join('.') || 'body', message: issue.message }];
  });
}

/** Parses a request part, turning zod issues into a ValidationError that names each field. */
export function parseRequest<S extends z.ZodType>(schema: S, input: unknown, what = 'request body'): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const details = issuesToDetails(result.error.issues);
  throw new ValidationError(`invalid ${what}: ${details.map((d) => `${d.path} ${d.message}`).join('; ')}`, details);
}

/** Cursors are opaque to clients: base64url of the last item's id. */
export function encodeCursor(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  // Re-encoding must give the same text, or it was not a cursor we made.
  if (!isUuid(id) || encodeCursor(id) !== cursor) {
    throw new ValidationError('invalid before: not a cursor from this API', [{ path: 'before', message: 'is not a valid cursor' }]);
  }
  return id;
}

/** `{ items, nextCursor }` from a page fetched with `limit + 1` rows. */
export function toPage<T extends { id: string }>(rows: T[], limit: number): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  const next = rows.length > limit ? items[items.length - 1] : undefined;
  return { items, nextCursor: next ? encodeCursor(next.id) : null };
}
