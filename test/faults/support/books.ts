import { INBOX_TABLE } from '../../../src/db/inbox';
import { openDatabase } from '../../../src/db/knex';
import { ENTRIES_TABLE, SIZES_TABLE } from '../../../src/db/migrations/timeline';
import type { TestSystem } from '../../support/system';
import { waitFor } from '../../support/system';
import { combine, reconcile, type Reconciliation } from './ledger';
import type { LoadFigures } from './load';

/**
 * Each tweet of the load carries a hashtag of its own, so that its effect
 * can be counted by id: analytics counts every hashtag it applies, and a
 * tweet applied twice shows a count of 2 on its tag (its inbox record,
 * unique by construction, could never show that).
 */
const LEDGER_TAG = 'ledger';

/** The tag that makes tweet `i` of a load countable (lower case: tags are case-folded). */
export function ledgerTag(loadTag: string, i: number): string {
  return `${LEDGER_TAG}${loadTag.toLowerCase()}x${i}`;
}

/** The text of tweet `i` of a load: a tag shared by a few, and its own ledger tag. */
export function loadTweetText(loadTag: string, i: number): string {
  return `load ${i} #fault${i % 7} #${ledgerTag(loadTag, i)}`;
}

/** The ledger tag a tweet's text carries, if any. */
export function ledgerTagOf(text: string): string | undefined {
  return new RegExp(`#(${LEDGER_TAG}[a-z0-9]+)`).exec(text)?.[1];
}

export interface Books {
  /** tweet.created ids committed (outbox rows) against the analytics effects applied. */
  tweets: Reconciliation;
  /** user.updated ids committed against the profile-change notifications created. */
  changes: Reconciliation;
  /** The same ids (tweet.created and user.updated) against what the timeline service applied. */
  timeline: Reconciliation;
  /**
   * Timelines whose size counts more entries than they hold: the store
   * keeps each (user, tweet) once, so a tweet applied twice there shows
   * only as an entry counted twice.
   */
  timelineMiscounted: string[];
  /** What identifies the writes behind the committed events: tweet ids, and the display names profile changes set. */
  committedTweetIds: Set<string>;
  committedDisplayNames: Set<string>;
  outboxUnsent: number;
  parked: number;
}

/** Reads what was committed against what the workers applied, by message id, from the services' own databases. */
export async function readBooks(sys: TestSystem): Promise<Books> {
  const api = openDatabase(sys.config, 'api');
  const analytics = openDatabase(sys.config, 'analytics');
  const notifications = openDatabase(sys.config, 'notifications');
  const timeline = openDatabase(sys.config, 'timeline');
  try {
    const [events, unsent, tagRows, recordRows, noteRows, everyEventId, timelineRecordRows, ownEntryRows, sizeRows, heldRows] = await Promise.all([
      api('outbox')
        .whereIn('type', ['tweet.created', 'user.updated'])
        .select<{ message_id: string; type: string; payload: string }[]>('message_id', 'type', 'payload'),
      api('outbox').whereNull('sent_at').count({ n: '*' }),
      analytics('hashtags').where('tag', 'like', `${LEDGER_TAG}%`).select<{ tag: string; count: number | string }[]>('tag', 'count'),
      analytics(INBOX_TABLE).where({ consumer: 'analytics' }).select<{ message_id: string }[]>('message_id'),
      notifications('notifications').where({ kind: 'profile_updated' }).select<{ message_id: string }[]>('message_id'),
      api('outbox').pluck<string[]>('message_id'),
      timeline(INBOX_TABLE).where({ consumer: 'timeline' }).select<{ message_id: string }[]>('message_id'),
      // A tweet's effect on the timelines: the entry every tweet gets in its author's own timeline (no load user nears timeline.maxEntries, so none is trimmed).
      timeline(ENTRIES_TABLE).whereRaw('?? = ??', ['user_id', 'author_id']).pluck<string[]>('tweet_id'),
      timeline(SIZES_TABLE).select<{ user_id: string; entries: number | string }[]>('user_id', 'entries'),
      timeline(ENTRIES_TABLE).groupBy('user_id').select<{ user_id: string; n: number | string }[]>('user_id', timeline.raw('count(*) as n')),
    ]);
    const tweets = events.filter((e) => e.type === 'tweet.created');
    const changes = events.filter((e) => e.type === 'user.updated');
    const tagCounts = new Map(tagRows.map((r) => [r.tag, Number(r.count)]));
    const recorded = new Set(recordRows.map((r) => r.message_id));
    const tweetIds = new Set(tweets.map((t) => t.message_id));
    // One entry per application: a tweet's own tag counts its effect; one without a tag is known by its inbox record.
    const tweetApplications: string[] = [];
    const committedTweetIds = new Set<string>();
    for (const t of tweets) {
      const body = JSON.parse(t.payload) as { tweetId: string; text: string };
      committedTweetIds.add(body.tweetId);
      const tag = ledgerTagOf(body.text);
      const times = tag === undefined ? (recorded.has(t.message_id) ? 1 : 0) : (tagCounts.get(tag) ?? 0);
      for (let k = 0; k < times; k++) tweetApplications.push(t.message_id);
    }
    // A record of a message nobody committed is applied too, and accounted for as a stray.
    for (const id of recorded) if (!tweetIds.has(id)) tweetApplications.push(id);
    const parked =
      (await sys.queueDepth('analytics.tweets.dlq')) + (await sys.queueDepth('notifications.user-events.dlq')) + (await sys.queueDepth('timeline.events.dlq'));
    return {
      tweets: reconcile(tweetIds, tweetApplications),
      changes: reconcile(
        changes.map((e) => e.message_id),
        noteRows.map((r) => r.message_id),
      ),
      timeline: timelineBooks(events, new Set(everyEventId), new Set(ownEntryRows), new Set(timelineRecordRows.map((r) => r.message_id))),
      timelineMiscounted: miscountedTimelines(sizeRows, heldRows),
      committedTweetIds,
      committedDisplayNames: new Set(
        changes
          .map((e) => (JSON.parse(e.payload) as { changes: { displayName?: { to?: unknown } } }).changes.displayName?.to)
          .filter((n): n is string => typeof n === 'string'),
      ),
      outboxUnsent: Number(unsent[0]?.n ?? 0),
      parked,
    };
  } finally {
    await Promise.all([api.destroy(), analytics.destroy(), notifications.destroy(), timeline.destroy()]);
  }
}

/**
 * The timeline service's books, by message id: a tweet is applied when its
 * author's timeline holds it; a profile change that renames nobody changes
 * no timeline, so its inbox record (written only with the effect, in its
 * transaction) is what shows it applied. A record of an id no outbox row
 * has (of any type: the timeline also consumes user.created) is a stray.
 */
export function timelineBooks(
  events: readonly { message_id: string; type: string; payload: string }[],
  everyEventId: ReadonlySet<string>,
  ownEntries: ReadonlySet<string>,
  recorded: ReadonlySet<string>,
): Reconciliation {
  const applications: string[] = [];
  for (const e of events) {
    const applied = e.type === 'tweet.created' ? ownEntries.has((JSON.parse(e.payload) as { tweetId: string }).tweetId) : recorded.has(e.message_id);
    if (applied) applications.push(e.message_id);
  }
  for (const id of recorded) if (!everyEventId.has(id)) applications.push(id);
  return reconcile(
    events.map((e) => e.message_id),
    applications,
  );
}

/** Each timeline whose kept size is above the entries it holds, with both figures. */
export function miscountedTimelines(
  sizes: readonly { user_id: string; entries: number | string }[],
  held: readonly { user_id: string; n: number | string }[],
): string[] {
  const holds = new Map(held.map((r) => [r.user_id, Number(r.n)]));
  return sizes
    .filter((r) => Number(r.entries) > (holds.get(r.user_id) ?? 0))
    .map((r) => `timeline of ${r.user_id} counts ${Number(r.entries)} entries and holds ${holds.get(r.user_id) ?? 0}`);
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
export async function settle(sys: TestSystem, timeoutMs = 90_000, opts: { timeline?: boolean } = {}): Promise<Settlement> {
  const started = Date.now();
  // A fleet without a timeline worker (the cluster scenarios) would otherwise wait out the whole timeout for it.
  const timeline = opts.timeline ?? true;
  await waitFor(
    'the books to balance',
    async () => {
      const b = await readBooks(sys);
      return b.outboxUnsent === 0 && b.tweets.lost.length === 0 && b.changes.lost.length === 0 && (!timeline || b.timeline.lost.length === 0);
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
  /** Accepted writes (by tweet id, by new display name) with no committed event. */
  acceptedNotCommitted: string[];
  refused: string;
  /** Distinct event ids committed. */
  committed: number;
  /** Distinct committed ids applied. */
  applied: number;
  /** Ids committed and never applied, ids applied more than once, ids applied but never committed. */
  lost: string[];
  duplicated: string[];
  strays: string[];
  /** The timeline service against the same committed ids; its duplicates include timelines that count an entry twice. */
  timeline: { applied: number; lost: string[]; duplicated: string[]; strays: string[] };
  parked: number;
  settleMs: number;
}

/** One row of the reliability table: accepted and committed writes against what the workers applied, id by id. */
export function figuresOf(scenario: string, load: string, f: LoadFigures, s: Settlement): ScenarioFigures {
  const all = combine(s.books.tweets, s.books.changes);
  const refused =
    Object.entries(f.refused)
      .map(([status, n]) => `${status === '0' ? 'no answer' : status}: ${n}`)
      .join(', ') || 'none';
  return {
    scenario,
    load,
    attempted: f.attempted,
    accepted: f.acceptedTweets + f.acceptedProfileChanges,
    acceptedNotCommitted: [
      ...f.acceptedTweetIds.filter((id) => !s.books.committedTweetIds.has(id)).map((id) => `tweet ${id}`),
      ...f.acceptedDisplayNames.filter((n) => !s.books.committedDisplayNames.has(n)).map((n) => `profile change to "${n}"`),
    ],
    refused,
    committed: all.committed,
    applied: all.applied,
    lost: all.lost,
    duplicated: all.duplicated,
    strays: all.strays,
    timeline: {
      applied: s.books.timeline.applied,
      lost: s.books.timeline.lost,
      duplicated: [...s.books.timeline.duplicated, ...s.books.timelineMiscounted],
      strays: s.books.timeline.strays,
    },
    parked: s.books.parked,
    settleMs: s.settleMs,
  };
}
