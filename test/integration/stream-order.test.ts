import path from 'node:path';
import { expect } from 'chai';
import { SseClient } from '../support/sse';
import { TestSystem, TEST_DB } from '../support/system';

const SKEW_MS = -5000;
const CHANGES = 60;
/** The client drops its stream after this many events and reconnects with Last-Event-ID. */
const EVENTS_PER_SESSION = 3;

/** test/integration/fixtures/skewedClock.ts, compiled beside this file. */
const skewedClock = path.join(__dirname, 'fixtures', 'skewedClock.js');

/**
 * Two competing notifications workers, the second on a "host" whose clock
 * is five seconds behind (the fixture skews every clock reading in its
 * process, so the ids it makes are five seconds older than the other's).
 * One user's profile changes many times while a client keeps dropping its
 * stream and resuming with Last-Event-ID: the resume position follows the
 * order the notifications were committed in, not their ids, so the client
 * sees every stored notification exactly once.
 */
describe(`A resumed notification stream never skips (${TEST_DB})`, function () {
  this.timeout(180_000);
  const sys = new TestSystem();

  before(async () => {
    await sys.setUp();
    await sys.startApi();
    await sys.startWorker('notifications');
    await sys.startWorker('notifications', {
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${skewedClock}`.trim(),
      WARREN_TEST_CLOCK_SKEW_MS: String(SKEW_MS),
    });
    expect(await sys.consumers('notifications.user-events')).to.equal(2);
  });

  after(async () => {
    await sys.tearDown();
  });

  it('two workers, one with its clock 5 s behind; a client resuming after every few events sees each stored notification once', async () => {
    const ada = await sys.createUser(`ada_${Date.now().toString(36).slice(-5)}`, 'Ada');
    const stored = async () => {
      const res = await sys.request('GET', `/users/${ada.id}/notifications?limit=100`, { token: ada.token });
      expect(res.status, res.text).to.equal(200);
      return res.json.items as { id: string; text: string; createdAt: string }[];
    };

    // The changes go on while the client comes and goes.
    const sentAt: number[] = [];
    let changesDone = false;
    const changes = (async () => {
      for (let i = 1; i <= CHANGES; i++) {
        sentAt[i] = Date.now();
        const res = await sys.request('PATCH', `/users/${ada.id}`, { token: ada.token, body: { displayName: `Ada ${i}` } });
        expect(res.status, res.text).to.equal(200);
        await new Promise((r) => setTimeout(r, 40));
      }
      changesDone = true;
    })();

    const seen: string[] = [];
    let lastEventId: string | undefined;
    let sessions = 0;
    for (let complete = false; !complete; sessions++) {
      // Decided before connecting: once everything is stored, this session reads whatever is left.
      complete = changesDone && (await stored()).length === CHANGES;
      const headers: Record<string, string> = { authorization: `Bearer ${ada.token}` };
      if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
      const client = await SseClient.open(`${sys.baseUrl}/users/${ada.id}/notifications/stream`, headers);
      expect(client.status).to.equal(200);
      if (complete) {
        // Until the stream has been quiet for a while.
        let count = -1;
        while (count !== client.events.length) {
          count = client.events.length;
          await new Promise((r) => setTimeout(r, 1500));
        }
      } else {
        await client.waitUntil('a few events', (c) => c.events.length >= EVENTS_PER_SESSION, 3000).catch(() => undefined);
      }
      await client.close();
      for (const e of client.events) seen.push((JSON.parse(e.data) as { id: string }).id);
      if (client.events.length > 0) lastEventId = client.events.at(-1)!.id;
      // Away for a moment: what is committed now must come from the store on the next connect.
      await new Promise((r) => setTimeout(r, 100));
    }
    await changes;

    const items = await stored();
    expect(items).to.have.length(CHANGES);
    // Both workers took a share: the skewed one stamps its notifications seconds before the change was sent.
    const behind = items.filter((n) => Date.parse(n.createdAt) < sentAt[Number(/"Ada (\d+)"$/.exec(n.text)![1])]! + SKEW_MS / 2).length;
    console.log(`      ${CHANGES} notifications (${behind} by the worker 5 s behind), read over ${sessions} stream sessions`);
    expect(behind, 'the skewed worker made some').to.be.greaterThan(0);
    expect(behind, 'the other worker made some').to.be.lessThan(CHANGES);

    const storedIds = new Set(items.map((n) => n.id));
    const missing = [...storedIds].filter((id) => !seen.includes(id));
    const duplicated = seen.filter((id, i) => seen.indexOf(id) !== i);
    expect({ missing: missing.length, duplicated: duplicated.length, foreign: seen.filter((id) => !storedIds.has(id)).length }).to.deep.equal({
      missing: 0,
      duplicated: 0,
      foreign: 0,
    });
  });
});
