/** @file
 * The console's server-rendered pages over HTTP on a real SQLite database,
 * with a fake broker's DLQs: sign-in into a session cookie, pages only with
 * a session, values escaped, CSRF tokens on every form, a viewer refused
 * every change, a discard from its form written to the audit log, sign-out.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { createConsoleApp } from '../../src/console/app';
import { listAudit } from '../../src/console/audit';
import { indexParks } from '../../src/console/parkedIndex';
import { parkRecord } from '../../src/console/parkRecord';
import { createOperatorToken, revokeOperatorToken } from '../../src/console/operatorTokens';
import { createLogger } from '../../src/log';
import { loadConfig } from '../../src/services';
import { sqliteTestDatabase, type TestDatabase } from '../support/databases';
import { FakeDlqs } from '../support/fakeDlqs';
import { warrenPark } from '../support/parks';

const config = loadConfig({ NODE_ENV: 'test' });

describe('console pages with sign-in and CSRF (integration, SQLite)', function () {
  let database: TestDatabase;
  let db: Knex;
  let server: http.Server;
  let base = '';
  let viewerToken = '';
  let operatorToken = '';
  let rowId = '';
  const dlqs = new FakeDlqs();

  async function get(path: string, cookie?: string) {
    const res = await fetch(`${base}${path}`, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    // Whitespace as a browser shows it: runs are one space.
    return { status: res.status, location: res.headers.get('location'), text: (await res.text()).replace(/\s+/g, ' '), headers: res.headers };
  }

  async function post(path: string, form: Record<string, string>, cookie?: string) {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}) },
      body: new URLSearchParams(form).toString(),
    });
    return {
      status: res.status,
      location: res.headers.get('location'),
      text: (await res.text()).replace(/\s+/g, ' '),
      setCookie: res.headers.get('set-cookie'),
    };
  }

  async function signIn(token: string): Promise<string> {
    const res = await post('/login', { token });
    expect(res.status).to.equal(302);
    expect(res.location).to.equal('/');
    expect(res.setCookie).to.match(/^warren_console_session=[A-Za-z0-9_-]{43}; /);
    expect(res.setCookie!.toLowerCase()).to.include('httponly').and.include('samesite=strict');
    return res.setCookie!.split(';')[0]!;
  }

  const csrfOf = (page: string) => /name="csrf" value="([^"]+)"/.exec(page)?.[1];

  before(async function () {
    database = await sqliteTestDatabase('console', { service: 'console' })();
    db = database.db;
    viewerToken = (await createOperatorToken(db, 'viewer', 'vera', Date.now())).token;
    operatorToken = (await createOperatorToken(db, 'operator', 'otto', Date.now())).token;
    const park = warrenPark({ body: { tweetId: 't1', text: '<script>alert(1)</script> hello' }, error: 'PermanentError: <b>bad</b>' });
    park.properties.timestamp = Math.floor(Date.now() / 1000);
    dlqs.park(park);
    await indexParks(db, [parkRecord(park)], Date.now());
    rowId = ((await db('parked_messages').first('id')) as { id: string }).id;
    const app = createConsoleApp({ db, config, log: createLogger('test', 'silent'), amqpUrl: 'amqp://fake', dlq: { replay: dlqs.take, discard: dlqs.take } });
    const handle = app.callback();
    server = http.createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async function () {
    await new Promise((resolve) => server?.close(resolve));
    await database?.close();
  });

  it('sends every page to sign-in without a session, and refuses a sign-in with a bad token', async function () {
    for (const path of ['/', `/messages/${rowId}`, '/audit']) {
      const res = await get(path);
      expect(res.status, path).to.equal(302);
      expect(res.location, path).to.equal('/login');
    }
    expect((await get('/', 'warren_console_session=forged')).location).to.equal('/login');
    expect((await get('/login')).text).to.include('<form method="post" action="/login">');
    const bad = await post('/login', { token: `wrc_${'x'.repeat(43)}` });
    expect(bad.status).to.equal(401);
    expect(bad.setCookie).to.equal(null);
  });

  it('shows a signed-in viewer the parked messages and one in full, every value escaped, and no action forms', async function () {
    const cookie = await signIn(viewerToken);
    const list = await get('/?q=hello', cookie);
    expect(list.status).to.equal(200);
    expect(list.headers.get('content-security-policy')).to.include("default-src 'none'");
    expect(list.text).to.include('PermanentError: &lt;b&gt;bad&lt;/b&gt;').and.include(`/messages/${rowId}`);
    expect(list.text).not.to.include('<b>bad</b>');
    expect((await get('/?q=nowhere', cookie)).text).to.include('Nothing parked matches.');
    const one = await get(`/messages/${rowId}`, cookie);
    expect(one.text).to.include('&lt;script&gt;alert(1)&lt;/script&gt; hello').and.include('&quot;x-warren-error-kind&quot;: &quot;exhausted&quot;');
    expect(one.text).not.to.include('<script>');
    expect(one.text).not.to.include('/discard');
    // Its only form is signing out, with the session's CSRF token.
    const csrf = csrfOf(one.text)!;
    expect(csrf).to.match(/^[A-Za-z0-9_-]{43}$/);
    const refused = await post(`/messages/${rowId}/discard`, { csrf, reason: 'mine' }, cookie);
    expect(refused.status).to.equal(403);
    expect(dlqs.calls).to.deep.equal([]);
  });

  it('offers the messages a search finds as a JSON export, to a session only, audited', async function () {
    const cookie = await signIn(viewerToken);
    const list = await get('/?q=hello&limit=5', cookie);
    expect(list.text).to.include('href="/export?q=hello"');
    expect((await get('/export?q=hello')).location).to.equal('/login');
    const res = await fetch(`${base}/export?q=hello`, { headers: { cookie } });
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-disposition')).to.match(/^attachment; filename="warren-parked-/);
    const doc = (await res.json()) as { format: string; count: number; messages: { id: string }[] };
    expect(doc).to.include({ format: 'warren.console.export/1', count: 1 });
    expect(doc.messages.map((m) => m.id)).to.deep.equal([rowId]);
    const [entry] = await listAudit(db, { limit: 1 });
    expect(entry).to.deep.include({ action: 'export', actor: 'vera', count: 1 });
    expect(dlqs.calls).to.deep.equal([]);
  });

  it("refuses an operator's form without the session's CSRF token, and discards with it, audited under the token's name", async function () {
    const cookie = await signIn(operatorToken);
    const page = (await get(`/messages/${rowId}`, cookie)).text;
    expect(page).to.include(`action="/messages/${rowId}/discard"`).and.include(`action="/messages/${rowId}/replay"`);
    const csrf = csrfOf(page)!;
    expect((await post(`/messages/${rowId}/discard`, { reason: 'spam' }, cookie)).status).to.equal(403);
    expect(
      (await post(`/messages/${rowId}/discard`, { reason: 'spam', csrf: `${csrf.slice(0, -1)}${csrf.endsWith('A') ? 'B' : 'A'}` }, cookie)).status,
    ).to.equal(403);
    // Another session's token is not this one's.
    const other = csrfOf((await get('/', await signIn(operatorToken))).text)!;
    expect(other).not.to.equal(csrf);
    expect((await post(`/messages/${rowId}/discard`, { reason: 'spam', csrf: other }, cookie)).status).to.equal(403);
    expect(dlqs.calls).to.deep.equal([]);

    const done = await post(`/messages/${rowId}/discard`, { reason: 'spam', csrf }, cookie);
    expect(done.status).to.equal(200);
    expect(done.text).to.include('Taken: 1 of 1');
    expect(dlqs.queues.get('analytics.tweets')).to.deep.equal([]);
    const [entry] = await listAudit(db, { limit: 1 });
    expect(entry).to.deep.include({ actor: 'otto', action: 'discard', count: 1, outcome: 'ok' });
    expect((await get('/audit', cookie)).text)
      .to.include('otto (operator)')
      .and.include('discard');
  });

  it('ends the session on sign-out and when its token is revoked', async function () {
    const cookie = await signIn(operatorToken);
    const csrf = csrfOf((await get('/', cookie)).text)!;
    const out = await post('/logout', { csrf }, cookie);
    expect(out.status).to.equal(302);
    expect((await get('/', cookie)).location).to.equal('/login');

    const { token } = await createOperatorToken(db, 'viewer', 'short-lived', Date.now());
    const session = await signIn(token);
    expect((await get('/', session)).status).to.equal(200);
    await revokeOperatorToken(db, 'short-lived', Date.now());
    expect((await get('/', session)).location).to.equal('/login');
  });
});
