import { openDatabase } from '../../../src/db/knex';
import type { TestSystem } from '../../support/system';
import { waitFor } from '../../support/system';
import type { LoadFigures } from './load';

export interface Books {
  /** Events the API committed (outbox rows): what the workers owe. */
  tweetsCommitted: number;
  changesCommitted: number;
  tweetsCounted: number;
  notificationsCounted: number;
  outboxUnsent: number;
  parked: number;
}

/** Reads what was committed against what the workers applied, from the services' own databases. */
export async function readBooks(sys: TestSystem): Promise<Books> {
  const api = openDatabase(sys.config, 'api');
  const analytics = openDatabase(sys.config, 'analytics');
  const notifications = openDatabase(sys.config, 'notifications');
  try {
    const count = async (q: Promise<{ n: number | string }[]>) => Number((await q)[0]?.n ?? 0);
    const [tweetsCommitted, changesCommitted, outboxUnsent, tweetsCounted, notificationsCounted] = await Promise.all([
      count(api('outbox').where({ type: 'tweet.created' }).count({ n: '*' })),
      count(api('outbox').where({ type: 'user.updated' }).count({ n: '*' })),
      count(api('outbox').whereNull('sent_at').count({ n: '*' })),
      count(analytics('user_stats').sum({ n: 'tweet_count' })),
      count(notifications('notifications').where({ kind: 'profile_updated' }).count({ n: '*' })),
    ]);
    const parked = (await sys.queueDepth('analytics.tweets.dlq')) + (await sys.queueDepth('notifications.user-events.dlq'));
    return { tweetsCommitted, changesCommitted, outboxUnsent, tweetsCounted, notificationsCounted, parked };
  } finally {
    await Promise.all([api.destroy(), analytics.destroy(), notifications.destroy()]);
  }
}

export interface Settlement {
  books: Books;
  settleMs: number;
}

/**
 * Waits until every committed event has been applied (or `timeoutMs`
 * passes), then waits a little longer and reads again, so that a late
 * duplicate would show.
 */
export async function settle(sys: TestSystem, timeoutMs = 90_000): Promise<Settlement> {
  const started = Date.now();
  await waitFor(
    'the books to balance',
    async () => {
      const b = await readBooks(sys);
      return b.outboxUnsent === 0 && b.tweetsCounted >= b.tweetsCommitted && b.notificationsCounted >= b.changesCommitted;
    },
    timeoutMs,
    250,
  ).catch(() => undefined);
  const settleMs = Date.now() - started;
  await new Promise((r) => setTimeout(r, 1500));
  return { books: await readBooks(sys), settleMs };
}

export interface ScenarioFigures {
  scenario: string;
  load: string;
  attempted: number;
  accepted: number;
  refused: string;
  committed: number;
  counted: number;
  lost: number;
  duplicated: number;
  parked: number;
  settleMs: number;
}

/** One row of the reliability table: accepted and committed writes against what the workers applied. */
export function figuresOf(scenario: string, load: string, f: LoadFigures, s: Settlement): ScenarioFigures {
  const b = s.books;
  const committed = b.tweetsCommitted + b.changesCommitted;
  const counted = b.tweetsCounted + b.notificationsCounted;
  const lost = Math.max(0, b.tweetsCommitted - b.tweetsCounted) + Math.max(0, b.changesCommitted - b.notificationsCounted);
  const duplicated = Math.max(0, b.tweetsCounted - b.tweetsCommitted) + Math.max(0, b.notificationsCounted - b.changesCommitted);
  const refused = Object.entries(f.refused).map(([status, n]) => `${status === '0' ? 'no answer' : status}: ${n}`).join(', ') || 'none';
  return {
    scenario,
    load,
    attempted: f.attempted,
    accepted: f.acceptedTweets + f.acceptedProfileChanges,
    refused,
    committed,
    counted,
    lost,
    duplicated,
    parked: b.parked,
    settleMs: s.settleMs,
  };
}
