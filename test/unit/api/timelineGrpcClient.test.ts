/** @file The timeline client over gRPC against real local gRPC servers: one good, one slow, one failing, one gone. */
import * as grpc from '@grpc/grpc-js';
import { expect } from 'chai';
import { TimelineClient } from '../../../src/api/timelineClient';
import { grpcTransport } from '../../../src/api/timelineGrpcClient';
import { timelineService, type GetTimelineRequest, type GrpcTimelinePage } from '../../../src/api/timelineProto';
import { UnavailableError } from '../../../src/domain/errors';
import { createLogger } from '../../../src/log';

const USER = '0190a5c8-7a4e-7c3b-8f00-000000000001';
const log = createLogger('timeline-grpc-client-test', 'silent');

type Answer = grpc.handleUnaryCall<GetTimelineRequest, GrpcTimelinePage>;

interface Peer {
  url: string;
  port: number;
  /** Requests it received. */
  seen: GetTimelineRequest[];
  /** The authority (host) each was sent to. */
  hosts: string[];
  /** Calls cancelled by the client before an answer. */
  cancelled: number;
  close(): Promise<void>;
}

/** A local gRPC server answering every GetTimeline with `answer`, counting what it saw. */
async function peer(answer: Answer, at: { host?: string; port?: number } = {}): Promise<Peer> {
  const server = new grpc.Server();
  const p = { seen: [], hosts: [], cancelled: 0 } as unknown as Peer;
  server.addService(timelineService().service, {
    GetTimeline: ((call, callback) => {
      p.seen.push(call.request);
      p.hosts.push(call.getHost());
      call.on('cancelled', () => p.cancelled++);
      answer(call, callback);
    }) as Answer,
  });
  const host = at.host ?? '127.0.0.1';
  p.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${at.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))),
  );
  p.url = `http://${host}:${p.port}`;
  p.close = async () => server.forceShutdown();
  return p;
}

const tweet = (text: string) => ({ id: 'a', authorId: USER, authorHandle: 'ada', text, createdAt: '2026-11-25T12:00:00.000Z' });
const good =
  (text = 'good'): Answer =>
  (_call, callback) =>
    callback(null, { items: [tweet(text)] });
const failing: Answer = (_call, callback) => callback({ code: grpc.status.INTERNAL, details: 'internal error' });
/** Answers only after far longer than any deadline here. */
const slow: Answer = (call, callback) => {
  const timer = setTimeout(() => good('slow')(call, callback), 5000);
  call.on('cancelled', () => clearTimeout(timer));
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

describe('TimelineClient over gRPC', function () {
  this.timeout(20_000);
  const peers: Peer[] = [];
  const clients: TimelineClient[] = [];
  const start = async (answer: Answer, at: Parameters<typeof peer>[1] = {}) => {
    const p = await peer(answer, at);
    peers.push(p);
    return p;
  };
  const client = (urls: string[], over: Partial<ConstructorParameters<typeof TimelineClient>[0]> = {}) => {
    const c = new TimelineClient({ urls, deadlineMs: 300, log, transport: grpcTransport, ...over });
    clients.push(c);
    return c;
  };
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await Promise.all(peers.splice(0).map((p) => p.close()));
  });

  it('calls GetTimeline with the user, limit and before, and gives the page in the REST shape', async () => {
    const one = await start((call, callback) =>
      callback(null, call.request.before === undefined ? { items: [tweet('first')], nextCursor: 'next' } : { items: [tweet('last')] }),
    );
    const c = client([one.url]);
    expect(await c.page(USER, { limit: 5 })).to.deep.equal({ items: [tweet('first')], nextCursor: 'next' });
    expect(await c.page(USER, { limit: 20, before: 'next' })).to.deep.equal({ items: [tweet('last')], nextCursor: null });
    expect(one.seen).to.deep.equal([
      { userId: USER, limit: 5 },
      { userId: USER, limit: 20, before: 'next' },
    ]);
  });

  it('balances calls across instances', async () => {
    const [a, b] = [await start(good('a')), await start(good('b'))];
    const c = client([a.url, b.url]);
    for (let i = 0; i < 10; i++) await c.page(USER, { limit: 1 });
    expect([a.seen.length, b.seen.length]).to.deep.equal([5, 5]);
  });

  it('retries once on another instance when one answers an error status, within the deadline', async () => {
    const [bad, ok] = [await start(failing), await start(good())];
    const c = client([bad.url, ok.url], { failuresToOpen: 100 });
    for (let i = 0; i < 4; i++) expect((await c.page(USER, { limit: 1 })).items[0]!.text).to.equal('good');
    expect(bad.seen.length, 'the failing one was asked first on every other call').to.equal(2);
  });

  it('gives a slow instance half the deadline, cancels its call, then asks another: no call waits past the deadline', async () => {
    const [late, ok] = [await start(slow), await start(good())];
    const c = client([late.url, ok.url], { deadlineMs: 400, failuresToOpen: 100 });
    for (let i = 0; i < 4; i++) {
      const { ms, value } = await timed(() => c.page(USER, { limit: 1 }));
      expect(value?.items[0]!.text).to.equal('good');
      expect(ms).to.be.below(400 + 100);
    }
    expect(late.seen).to.have.length(2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(late.cancelled, 'the slow server learns its calls were given up').to.equal(2);
  });

  it('answers UnavailableError (a 503 with Retry-After) within the deadline when no instance answers', async () => {
    const [late, bad] = [await start(slow), await start(failing)];
    const gone = await start(good());
    await gone.close();
    for (const urls of [[late.url], [late.url, bad.url], [gone.url, bad.url], [gone.url]]) {
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
  });

  it('counts every address of a host name as an instance, sent under the configured name', async () => {
    const a = await start(good('a'), { host: '127.0.0.1' });
    const b = await start(good('b'), { host: '127.0.0.2', port: a.port });
    let addresses = ['127.0.0.1', '127.0.0.2'];
    const lookup = async (name: string) => (name === 'timeline.test' ? addresses : []);
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
  });

  it('reads an answer with no items as an empty last page (proto3 has no absent list)', async () => {
    const empty = await start((_call, callback) => callback(null, {} as GrpcTimelinePage));
    expect(await client([empty.url]).page(USER, { limit: 1 })).to.deep.equal({ items: [], nextCursor: null });
  });

  it('reaches an instance again within about a second of its coming back on its port', async () => {
    const first = await start(good('before'));
    const c = client([first.url], { failuresToOpen: 100 });
    expect((await c.page(USER, { limit: 1 })).items[0]!.text).to.equal('before');
    await first.close();
    expect((await timed(() => c.page(USER, { limit: 1 }))).error).to.be.instanceOf(UnavailableError);
    await start(good('after'), { port: first.port });
    const started = performance.now();
    let text: string | undefined;
    while (text === undefined && performance.now() - started < 5000) {
      text = (await timed(() => c.page(USER, { limit: 1 }))).value?.items[0]!.text;
      if (text === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(text).to.equal('after');
    expect(performance.now() - started).to.be.below(1500);
  });
});
