import { z } from 'zod';

/**
 * The shapes the API answers with, as zod schemas: the OpenAPI document is
 * generated from them (src/api/openapi.ts) and the tests parse real
 * responses with them, so the document cannot describe a body the API does
 * not send.
 */
const id = z.uuid().meta({ description: 'a UUIDv7 (time-ordered)' });
const time = z.iso.datetime().meta({ description: 'ISO-8601 UTC' });

export const errorBody = z.strictObject({
  error: z.strictObject({
    code: z.string().meta({ description: 'machine-readable, e.g. validation_failed, unauthorized, token_expired, not_found, handle_taken' }),
    message: z.string(),
    details: z
      .array(z.strictObject({ path: z.string(), message: z.string() }))
      .optional()
      .meta({ description: 'for 400: each invalid field by its path' }),
  }),
});

/** Every list: a page of items, newest first, and the cursor of the next page (null on the last). */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.strictObject({ items: z.array(item), nextCursor: z.string().nullable().meta({ description: 'pass as `before` for the next page' }) });
}

export const userResponse = z.strictObject({ id, handle: z.string(), displayName: z.string(), bio: z.string().nullable(), createdAt: time, updatedAt: time });

const tokenId = z.uuid().meta({ description: 'the token’s public id (random, not derived from the secret)' });

export const issuedToken = z.strictObject({
  id: tokenId,
  token: z.string().meta({ description: '`wrn_` and 43 base64url characters; shown once' }),
  expiresAt: time,
});

/** A token as its user may see it: never the secret nor its hash. */
export const tokenInfo = z.strictObject({
  id: tokenId,
  createdAt: time,
  expiresAt: time,
  lastUsed: z.iso.date().nullable().meta({ description: 'the UTC day of its last use (YYYY-MM-DD), null if never used' }),
  current: z.boolean().meta({ description: 'true for the token this request presented' }),
});

export const tokenList = pageOf(tokenInfo);

export const createdUser = z.strictObject({ user: userResponse, token: issuedToken.shape.token });

export const tweetResponse = z.strictObject({ id, authorId: id, authorHandle: z.string(), text: z.string(), createdAt: time });

export const notificationResponse = z.strictObject({
  id,
  kind: z.string().meta({ description: 'profile_updated | new_follower' }),
  text: z.string(),
  data: z.unknown().meta({ description: 'what the notification is about (kind-specific)' }),
  createdAt: time,
});

const tagCount = z.strictObject({ tag: z.string(), count: z.number().int() });
const mentionCount = z.strictObject({ handle: z.string(), count: z.number().int() });

export const userAnalytics = z.strictObject({
  userId: id,
  handle: z.string(),
  tweetCount: z.number().int(),
  lastTweetAt: time.nullable(),
  topHashtags: z.array(tagCount),
  topMentions: z.array(mentionCount),
});

export const hashtagList = pageOf(tagCount);

export const analyticsSummary = z.strictObject({
  totals: z.strictObject({ tweets: z.number().int(), usersWithTweets: z.number().int(), hashtags: z.number().int() }),
  tweetsPerHour: z.array(z.strictObject({ hour: time, count: z.number().int() })).meta({ description: 'the last 24 hours, oldest first' }),
});

export const liveness = z.strictObject({ status: z.literal('ok') });

export const readiness = z.strictObject({
  status: z
    .enum(['ok', 'degraded', 'unavailable'])
    .meta({ description: 'degraded: ready to take writes, but a reported check (broker, relay, consumers, ...) fails' }),
  checks: z.array(
    z.strictObject({
      name: z.string(),
      ok: z.boolean(),
      required: z.boolean().meta({ description: 'whether this check decides readiness (database, writer, outbox, shutdown) or is only reported' }),
      detail: z.string().optional(),
    }),
  ),
});
