/** @file
 * The operator console in headless Chromium (Debian's `chromium`, driven by
 * playwright-core), as an operator uses it, on the real broker with the
 * API and the analytics worker running: sign in, the overview with live
 * figures, a parked message found by a word in its body and opened,
 * a filtered selection replayed and applied downstream (the analytics
 * count moves), one message discarded, a viewer refused, the audit log.
 * Screenshots go to docs/console-*.png.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { chromium, type Browser, type Page } from 'playwright-core';
import { connectBroker, type BrokerConnection } from '../../src/broker/connection';
import { projectRoot } from '../../src/config';
import { createConsoleApp } from '../../src/console/app';
import { ParkIndexer } from '../../src/console/indexer';
import { createOperatorToken } from '../../src/console/operatorTokens';
import { PARKED_TABLE } from '../../src/db/migrations/console';
import { openDatabase } from '../../src/db/knex';
import { createLogger } from '../../src/log';
import { rawPublish } from '../support/amqp';
import { TestSystem, waitFor } from '../support/system';

const QUEUE = 'analytics.tweets';
const log = createLogger('test', 'silent');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

function chromiumPath(): string {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('no chromium on PATH: apt-get install chromium (.ci/run installs it), or set CHROMIUM_PATH');
  }
}

describe('console in a browser (headless Chromium)', function () {
  this.timeout(180_000);
  const sys = new TestSystem();
  let db: Knex;
  let connection: BrokerConnection;
  let indexer: ParkIndexer;
  let server: http.Server;
  let browser: Browser;
  let base = '';
  let operatorToken = '';
  let viewerToken = '';
  let ada: { id: string; token: string };
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(projectRoot, 'docs', `console-${name}.png`), fullPage: true });
  const tweetCount = async (): Promise<number> => (await sys.request('GET', `/analytics/users/${ada.id}`)).json?.tweetCount ?? 0;

  /** Parks a tweet.created event for Ada as the worker would after its retries ran out. */
  async function parkTweet(text: string, error: string, body?: string): Promise<string> {
    const messageId = crypto.randomUUID();
    const at = new Date().toISOString();
    const event = { tweetId: crypto.randomUUID(), authorId: ada.id, authorHandle: 'ada', text, createdAt: at };
    await rawPublish(sys.amqpUrl, 'warren.dlx', QUEUE, body ?? JSON.stringify(event), {
      messageId,
      type: 'tweet.created',
      contentType: 'application/json',
      timestamp: Math.floor(Date.now() / 1000),
      headers: {
        'x-schema-version': '1.0',
        'x-warren-error': error,
        'x-warren-error-kind': 'exhausted',
        'x-warren-attempts': 5,
        'x-warren-first-failure': at,
        'x-warren-last-failure': at,
        'x-warren-original-queue': QUEUE,
        'x-warren-original-exchange': 'tweets',
        'x-warren-original-routing-key': 'tweet.created',
      },
    });
    return messageId;
  }

  async function signIn(page: Page, token: string): Promise<void> {
    await page.goto(`${base}/login`);
    await page.fill('input[name=token]', token);
    await page.click('button:has-text("Sign in")');
    await page.waitForURL(`${base}/`);
  }

  before(async function () {
    await sys.setUp({ console: { maxPerAction: 10 } });
    await sys.startApi();
    ada = await sys.createUser(`ada_${Date.now().toString(36).slice(-5)}`, 'Ada');
    db = openDatabase(sys.config, 'console');
    connection = connectBroker({ url: sys.amqpUrl, service: 'console', role: 'consume', heartbeatSeconds: 10, reconnectSeconds: 1, log });
    indexer = new ParkIndexer({ connection, db, log });
    operatorToken = (await createOperatorToken(db, 'operator', 'otto', Date.now())).token;
    viewerToken = (await createOperatorToken(db, 'viewer', 'vera', Date.now())).token;
    const app = createConsoleApp({ db, config: sys.config, log, amqpUrl: sys.amqpUrl });
    const handle = app.callback();
    server = http.createServer((req, res) => void handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await parkTweet('the zebra crossing', 'TransientError: database busy');
    await parkTweet('a second tweet', 'TransientError: database busy');
    await parkTweet('junk', 'PermanentError: not a tweet at all', 'not json: junk');
    await waitFor('3 parks indexed', async () => Number(((await db(PARKED_TABLE).count({ n: '*' })) as { n: number }[])[0]!.n) === 3);
    await sys.startWorker('analytics');
    browser = await chromium.launch({ executablePath: chromiumPath(), args: FLAGS, headless: true });
  });

  after(async function () {
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
    await indexer?.stop();
    await connection?.close();
    await db?.destroy();
    await sys.tearDown();
  });

  it('signs in, shows the overview with live figures, finds a message by a word in its body and opens it', async function () {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    await signIn(page, operatorToken);
    await page.click('nav a:has-text("Overview")');
    // The broker reports its figures every 5 s (the page reloads itself every 10 s; here sooner).
    await waitFor(
      'the overview to show the three parks in the DLQ and the index',
      async () => {
        if (!/analytics\.tweets\.dlq\s*3\s*3/.test(await page.innerText('#dlqs'))) await page.reload();
        return /analytics\.tweets\.dlq\s*3\s*3/.test(await page.innerText('#dlqs'));
      },
      40_000,
    );
    const queues = await page.innerText('#queues');
    expect(queues).to.match(/analytics\.tweets\s+work\s+0\s+0\s+1/);
    expect(await page.innerText('#outbox')).to.match(/Outbox backlog \d+ · relay up/);
    expect(await page.innerText('#reasons')).to.include('TransientError: database busy');
    await shot(page, 'overview');

    await page.click('nav a:has-text("Parked messages")');
    await page.fill('input[name=q]', 'zebra');
    await page.click('button:has-text("Search")');
    const rows = page.locator('table tr:has(td)');
    expect(await rows.count()).to.equal(1);
    await rows.locator('a').click();
    await page.waitForURL(/\/messages\//);
    const body = await page.innerText('pre');
    expect(body).to.include('"text": "the zebra crossing"');
    expect(await page.innerText('body')).to.include('x-warren-error-kind');
    await shot(page, 'message');
    await page.close();
  });

  it('replays a filtered selection and sees it applied downstream, then discards one', async function () {
    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    await signIn(page, operatorToken);
    const before = await tweetCount();
    await page.fill('input[name=reason]', 'database busy');
    await page.click('button:has-text("Search")');
    await page.click('button:has-text("Replay all 2 that match")');
    // The replay runs on after the form's answer; its page shows the progress until it ends.
    await page.waitForURL(/\/actions\//);
    expect(await page.innerText('#result')).to.include('Replayed 2 of 2');
    await waitFor('both replayed tweets counted by the analytics worker', async () => (await tweetCount()) === before + 2, 30_000);

    await page.goto(`${base}/?q=junk`);
    await page.locator('table tr:has(td) a').click();
    await page.fill('input[name=reason]', 'not a tweet, never will be');
    await page.click('button:has-text("Discard")');
    expect(await page.innerText('body')).to.include('Taken: 1 of 1');
    await page.goto(`${base}/`);
    expect(await page.innerText('body')).to.include('Nothing parked matches.');
    await page.close();
  });

  it('refuses every change to a viewer, and shows the audit log', async function () {
    const context = await browser.newContext();
    const page = await context.newPage();
    await signIn(page, viewerToken);
    await page.goto(`${base}/?status=any`);
    expect(await page.locator('#replay-selection').count()).to.equal(0);
    const csrf = await page.getAttribute('input[name=csrf]', 'value');
    const refused = await context.request.post(`${base}/replay`, { form: { csrf: csrf!, q: 'zebra' } });
    expect(refused.status()).to.equal(403);
    await page.click('nav a:has-text("Audit log")');
    const audit = await page.innerText('table');
    expect(audit).to.match(/otto \(operator\)\s+discard/);
    expect(audit).to.match(/otto \(operator\)\s+replay/);
    await page.setViewportSize({ width: 1100, height: 500 });
    await shot(page, 'audit');
    await context.close();
  });
});
