/** @file The timeline client against real local HTTP servers: one good, one slow, one failing, one gone. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { TimelineClient } from '../../../src/api/timelineClient';
import { UnavailableError } from '../../../src/domain/errors';
import { createLogger } from '../../../src/log';

const USER = '0190a5c8-7a4e-7c3b-8f00-000000000001';
const log = createLogger('timeline-client-test', 'silent');

interface Peer {
  url: string;
  port: number;
  /** Requests it received, by path and query. */
  seen: string[];
  /** The Host header of each. */
  hosts: string[];
  /** Connections it accepted (keep-alive reuses them). */
  connections: number;
  close(): Promise<void>;
}

/** A local server answering every request with `answer`, counting what it saw. */
async function peer(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void, at: { host?: string; port?: number } = {}): Promise<Peer> {
  const seen: string[] = [];
  const hosts: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    hosts.push(req.headers.host ?? '');
    answer(req, res);
  });
  const p = { seen, hosts, connections: 0 } as Peer;
  server.on('connection', () => p.connections++);
  const host = at.host ?? '127.0.0.1';
  await new Promise<void>((resolve) => server.listen(at.port ?? 0, host, resolve));
  p.port = (server.address() as AddressInfo).port;
  p.url = `http://${host}:${p.port}`;
  p.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return p;
}

const page = (text: string) => ({ items: [{ id: 'a', authorId: USER, authorHandle: 'ada', text, createdAt: '2026-11-25T12:00:00.000Z' }], nextCursor: null });
const good =
  (text = 'good') =>
  (_req: http.IncomingMessage, res: http.ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(page(text)));
  };
const failing = (_req: http.IncomingMessage, res: http.ServerResponse) => {
  res.writeHead(500, { 'content-type': 'application/json' });
  res.end('{"error":{"code":"internal","message":"internal error"}}');
};
/** Answers only after far longer than any deadline here. */
const slow = (_req: http.IncomingMessage, res: http.ServerResponse) => {
  const timer = setTimeout(() => good('slow')(_req, res), 5000);
  res.on('close', () => clearTimeout(timer));
};

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const started = performance.now();
  try {
    const value = await fn();
    return { ms: performance.now() - started, value };
  } catch (error) {
    return { ms: performance.now() - started, error };
  }
}

describe('TimelineClient', function () {
  this.timeout(20_000);
  const peers: Peer[] = [];
  const clients: TimelineClient[] = [];
  const start = async (answer: Parameters<typeof peer>[0], at: Parameters<typeof peer>[1] = {}) => {
    const p = await peer(answer, at);
    peers.push(p);
    return p;
  };
  const client = (urls: string[], over: Partial<ConstructorParameters<typeof TimelineClient>[0]> = {}) => {
    const c = new TimelineClient({ urls, deadlineMs: 300, log, ...over });
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(peers.splice(0).map((p) => p.close()));
  });

  it('asks GET /timelines/:userId with limit and before, under the base URL, over kept-alive connections', async () => {
    const one = await start(good());
    const c = client([`${one.url}/prefix/`]);
    expect(await c.page(USER, { limit: 5, before: 'abc' })).to.deep.equal(page('good'));
    for (let i = 0; i < 20; i++) await c.page(USER, { limit: 20 });
    expect(one.seen[0]).to.equal(`/prefix/timelines/${USER}?limit=5&before=abc`);
    expect(one.seen[1]).to.equal(`/prefix/timelines/${USER}?limit=20`);
    expect(one.connections, 'connections kept alive, not one per call').to.be.at.most(2);
  });

  it('balances calls across instances', async () => {
    const [a, b] = [await start(good('a')), await start(good('b'))];
    const c = client([a.url, b.url]);
    for (let i = 0; i < 10; i++) await c.page(USER, { limit: 1 });
    expect([a.seen.length, b.seen.length]).to.deep.equal([5, 5]);
  });

  it('retries once on another instance when one fails, within the deadline', async () => {
    const [bad, ok] = [await start(failing), await start(good())];
    const c = client([bad.url, ok.url], { failuresToOpen: 100 });
    for (let i = 0; i < 4; i++) expect((await c.page(USER, { limit: 1 })).items[0]!.text).to.equal('good');
    expect(bad.seen.length, 'the failing one was asked first on every other call').to.equal(2);
  });

  it('gives a slow instance half the deadline, then asks another: no call waits past the deadline', async () => {
    const [late, ok] = [await start(slow), await start(good())];
    const c = client([late.url, ok.url], { deadlineMs: 400, failuresToOpen: 100 });
    for (let i = 0; i < 4; i++) {
      const { ms, value } = await timed(() => c.page(USER, { limit: 1 }));
      expect(value?.items[0]!.text).to.equal('good');
      expect(ms).to.be.below(400 + 100);
    }
    expect(late.seen).to.have.length(2);
  });

  it('answers UnavailableError (a 503 with Retry-After) within the deadline when no instance answers', async () => {
    const [late, bad] = [await start(slow), await start(failing)];
    const gone = await start(good());
    await gone.close();
    for (const urls of [[late.url], [late.url, bad.url], [gone.url, bad.url]]) {
      const c = client(urls, { deadlineMs: 300 });
      const { ms, error } = await timed(() => c.page(USER, { limit: 1 }));
      expect(error, urls.join(' ')).to.be.instanceOf(UnavailableError);
      expect((error as UnavailableError).retryAfterSeconds).to.be.at.least(1);
      expect(ms, urls.join(' ')).to.be.below(300 + 100);
    }
  });

  it('sets aside an instance that keeps failing, and tries it again once its time is over', async () => {
    let now = 1_000_000;
    const [bad, ok] = [await start(failing), await start(good())];
    const c = client([bad.url, ok.url], { failuresToOpen: 2, openMs: 5000, now: () => now });
    for (let i = 0; i < 10; i++) await c.page(USER, { limit: 1 });
    expect(bad.seen, 'asked until it failed twice, then skipped').to.have.length(2);
    expect(ok.seen).to.have.length(10);
    expect(c.status()).to.deep.equal([
      { url: bad.url, setAside: true },
      { url: ok.url, setAside: false },
    ]);
    now += 5001;
    await c.page(USER, { limit: 1 });
    await c.page(USER, { limit: 1 });
    expect(bad.seen, 'one trial after its time aside, which failed: set aside again').to.have.length(3);
    await c.page(USER, { limit: 1 });
    expect(bad.seen).to.have.length(3);
  });

  it('counts every address of a host name as an instance, and follows the name as it is resolved again', async () => {
    const a = await start(good('a'), { host: '127.0.0.1' });
    // Another loopback address, the same port: a second replica behind one name.
    const b = await start(good('b'), { host: '127.0.0.2', port: a.port });
    let addresses = ['127.0.0.1', '127.0.0.2'];
    let dnsDown = false;
    const lookup = async (name: string) => {
      if (dnsDown) throw new Error('SERVFAIL');
      return name === 'timeline.test' ? addresses : [];
    };
    // A deadline far above any call's time here: a slow call under load would be retried on the other instance and skew the count.
    const c = client([`http://timeline.test:${a.port}`], { deadlineMs: 5000, lookup });
    await c.startDiscovery(60_000);
    for (let i = 0; i < 10; i++) await c.page(USER, { limit: 1 });
    expect([a.seen.length, b.seen.length]).to.deep.equal([5, 5]);
    expect(new Set([...a.hosts, ...b.hosts])).to.deep.equal(new Set([`timeline.test:${a.port}`]));
    addresses = ['127.0.0.2'];
    await c.refresh();
    for (let i = 0; i < 4; i++) await c.page(USER, { limit: 1 });
    expect([a.seen.length, b.seen.length], 'the address gone is no longer asked').to.deep.equal([5, 9]);
    // A failed resolution keeps what was known.
    dnsDown = true;
    await c.refresh();
    await c.page(USER, { limit: 1 });
    expect(b.seen).to.have.length(10);
  });

  it('takes a body that is not a page as a failure', async () => {
    const odd = await start((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"items":"nope"}');
    });
    const { error } = await timed(() => client([odd.url]).page(USER, { limit: 1 }));
    expect(error).to.be.instanceOf(UnavailableError);
  });
});
