/** @file The timeline service end to end: the API asks it, it converges on what the old in-process query answered, and its absence is a 503 in time. */
import { expect } from 'chai';
import type { Knex } from 'knex';
import { openDatabase } from '../../src/db/knex';
import { referenceTimeline } from '../support/referenceTimeline';
import { freePort, TestSystem, TEST_DB, waitFor, type WarrenProcess } from '../support/system';

interface User {
  id: string;
  token: string;
  handle: string;
}
type Page = { items: { id: string }[]; nextCursor: string | null };

describe(`timeline service (${TEST_DB})`, function () {
  this.timeout(180_000);
  const sys = new TestSystem();
  let apiDb: Knex;
  let timeline: WarrenProcess;
  const suffix = Date.now().toString(36).slice(-5);

  before(async () => {
    await sys.setUp();
    await sys.startApi();
    timeline = await sys.startWorker('timeline');
    apiDb = openDatabase(sys.config, 'api');
  });
  after(async () => {
    await apiDb?.destroy();
    await sys.tearDown();
  });

  const user = async (name: string): Promise<User> => {
    const handle = `${name}_${suffix}`;
    return { ...(await sys.createUser(handle)), handle };
  };
  const page = async (userId: string, query = ''): Promise<Page> => {
    const res = await sys.request('GET', `/users/${userId}/timeline${query}`);
    if (res.status !== 200) throw new Error(`GET timeline answered ${res.status}: ${res.text}`);
    return res.json as Page;
  };

  it("shows a tweet in a follower's timeline within a second", async () => {
    const [ada, bob] = [await user('ada'), await user('bob')];
    expect((await sys.request('PUT', `/users/${bob.id}/following/${ada.id}`, { token: bob.token })).status).to.equal(204);
    const posted = await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'hello followers' } });
    expect(posted.status).to.equal(201);
    const started = Date.now();
    await waitFor('the tweet in the follower timeline', async () => (await page(bob.id)).items.some((t) => t.id === posted.json.id), 1000, 20);
    const tookMs = Date.now() - started;
    expect(tookMs).to.be.below(1000);
    const shown = (await page(bob.id)).items[0];
    expect(shown).to.deep.include({ id: posted.json.id, authorId: ada.id, authorHandle: ada.handle, text: 'hello followers' });
  });

  it('answers, once drained, what the old in-process query answers for a random follow graph, page by page', async () => {
    const users: User[] = [];
    for (let i = 0; i < 8; i++) users.push(await user(`g${i}`));
    let r = 20261125;
    const next = (k: number) => (r = (r * 1103515245 + 12345) % 2147483648) % k;
    const follows = new Set<string>();
    for (let op = 0; op < 240; op++) {
      const a = users[next(users.length)]!;
      const b = users[next(users.length)]!;
      const kind = next(20);
      let res;
      if (kind < 9 || a === b) res = await sys.request('POST', '/tweets', { token: a.token, body: { text: `tweet ${op} by ${a.handle}` } });
      else if (kind === 19) {
        a.handle = `r${op}_${suffix}`;
        res = await sys.request('PATCH', `/users/${a.id}`, { token: a.token, body: { handle: a.handle } });
      } else if (!follows.has(`${a.id} ${b.id}`) || kind < 13) {
        follows.add(`${a.id} ${b.id}`);
        res = await sys.request('PUT', `/users/${a.id}/following/${b.id}`, { token: a.token });
      } else {
        follows.delete(`${a.id} ${b.id}`);
        res = await sys.request('DELETE', `/users/${a.id}/following/${b.id}`, { token: a.token });
      }
      expect(res.status, res.text).to.be.within(200, 204);
    }

    const unsent = async () => Number((await apiDb('outbox').whereNull('sent_at').count({ n: '*' }))[0]!.n);
    await waitFor(
      'the outbox relayed and the timeline queue drained',
      async () => (await unsent()) === 0 && (await sys.queueDepth('timeline.events')) === 0,
      30_000,
    );
    const reference = referenceTimeline(apiDb);
    /** Every page of both, limit 7, following each one's own cursors. */
    const allPages = async (u: User) => {
      const service: Page[] = [];
      const expected: Page[] = [];
      for (let before: string | null | undefined = undefined; before !== null;) {
        const p = await page(u.id, `?limit=7${before ? `&before=${before}` : ''}`);
        service.push(p);
        before = p.nextCursor;
      }
      for (let before: string | null | undefined = undefined; before !== null;) {
        const p = await reference.page(u.id, { limit: 7, ...(before ? { before } : {}) });
        expected.push(JSON.parse(JSON.stringify(p)) as Page);
        before = p.nextCursor;
      }
      return { service, expected };
    };
    // The last messages may still be unacked in the worker's batch: converging takes at most a moment more.
    await waitFor(
      'the timelines to converge',
      async () => {
        for (const u of users) {
          const { service, expected } = await allPages(u);
          if (JSON.stringify(service) !== JSON.stringify(expected)) return false;
        }
        return true;
      },
      10_000,
    ).catch(() => undefined);
    let compared = 0;
    for (const u of users) {
      const { service, expected } = await allPages(u);
      expect(service, u.handle).to.deep.equal(expected);
      compared += expected.reduce((n, p) => n + p.items.length, 0);
    }
    expect(compared, 'the graph produced timelines worth comparing').to.be.above(100);
  });

  it('answers 503 with Retry-After within the deadline when no timeline instance answers, and serves again once one is back', async () => {
    const ada = await user('ada2');
    await timeline.stop(10_000);
    const started = Date.now();
    const res = await sys.request('GET', `/users/${ada.id}/timeline`);
    const tookMs = Date.now() - started;
    expect(res.status).to.equal(503);
    expect(res.headers.get('retry-after')).to.be.a('string');
    expect(res.json.error.code).to.equal('timeline_unavailable');
    expect(tookMs).to.be.below(sys.config.timeline.deadlineMs + 300);
    timeline = await sys.startWorker('timeline');
    await waitFor('the timeline to answer again', async () => (await sys.request('GET', `/users/${ada.id}/timeline`)).status === 200, 15_000);
  });
});

for (const protocol of ['rest', 'grpc'] as const)
  describe(`timeline service, two instances, the API calling over ${protocol} (${TEST_DB})`, function () {
    this.timeout(180_000);
    const sys = new TestSystem();

    before(async () => {
      await sys.setUp();
    });
    after(async () => {
      await sys.tearDown();
    });

    it('loses no read when one of two instances is killed under load, none waiting past the deadline; both gone is a 503 in time', async () => {
      const [second, secondGrpc] = [await freePort(), await freePort()];
      // The first instance's address as the API calls it, the one it sets aside once killed.
      const firstGrpc = sys.env.WARREN_TIMELINE_GRPC_URLS!;
      const firstUrl = protocol === 'rest' ? sys.timelineUrl : firstGrpc;
      sys.env.WARREN_TIMELINE_PROTOCOL = protocol;
      sys.env.WARREN_TIMELINE_URLS = `${sys.timelineUrl},http://127.0.0.1:${second}`;
      sys.env.WARREN_TIMELINE_GRPC_URLS = `${firstGrpc},http://127.0.0.1:${secondGrpc}`;
      await sys.startApi();
      const first = await sys.startWorker('timeline');
      const other = await sys.startWorker('timeline', { WARREN_TIMELINE_PORT: String(second), WARREN_TIMELINE_GRPC_PORT: String(secondGrpc) });
      await waitFor('the second instance to serve', async () => (await fetch(`http://127.0.0.1:${second}/readyz`)).ok);
      const ada = await sys.createUser(`ada_${Date.now().toString(36).slice(-5)}`);
      const posted = await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'read me' } });
      await waitFor('the tweet in the timeline', async () => (await sys.request('GET', `/users/${ada.id}/timeline`)).json?.items?.length === 1);

      const { deadlineMs } = sys.config.timeline;
      const outcomes: { status: number; ms: number }[] = [];
      let reading = true;
      const reader = async () => {
        while (reading) {
          const started = Date.now();
          const res = await sys.request('GET', `/users/${ada.id}/timeline`);
          outcomes.push({ status: res.status, ms: Date.now() - started });
          if (res.status === 200) expect(res.json.items[0].id).to.equal(posted.json.id);
        }
      };
      const readers = Array.from({ length: 4 }, reader);
      await new Promise((r) => setTimeout(r, 1000));
      await first.kill9();
      await new Promise((r) => setTimeout(r, 2000));
      reading = false;
      await Promise.all(readers);
      const failed = outcomes.filter((o) => o.status !== 200);
      expect(outcomes.length, 'reads under load').to.be.above(50);
      expect(failed, JSON.stringify(failed.slice(0, 5))).to.deep.equal([]);
      expect(Math.max(...outcomes.map((o) => o.ms)), 'the slowest read').to.be.below(deadlineMs + 300);

      // The API reports (without deciding its readiness on it) the instance it set aside.
      const ready = await sys.request('GET', '/readyz');
      const check = (ready.json.checks as { name: string; ok: boolean; detail: string; instances?: unknown }[]).find((c) => c.name === 'timeline');
      expect(check).to.deep.include({ ok: true, detail: `2 instance(s), set aside: ${firstUrl}` });
      expect(check?.instances, 'each instance, for warren status').to.deep.equal([
        { url: firstUrl, setAside: true },
        { url: `http://127.0.0.1:${protocol === 'rest' ? second : secondGrpc}`, setAside: false },
      ]);

      await other.kill9();
      const started = Date.now();
      const res = await sys.request('GET', `/users/${ada.id}/timeline`);
      expect(res.status).to.equal(503);
      expect(res.headers.get('retry-after')).to.be.a('string');
      expect(Date.now() - started).to.be.below(deadlineMs + 300);
    });
  });
