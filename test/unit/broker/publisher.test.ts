import { expect } from 'chai';
import { ConfirmPublisher, PublishError, type PublishFailure, type PublishRequest } from '../../../src/broker/publisher';
import { createLogger } from '../../../src/log';
import { fakeConnection, type FakeBroker, type FakeChannel } from '../../support/fakeAmqp';

const log = createLogger('test', 'silent');

function request(messageId: string): PublishRequest {
  return { exchange: 'tweets', routingKey: 'tweet.created', content: Buffer.from(`{"id":"${messageId}"}`), properties: { messageId } };
}

/**
 * ConfirmPublisher on a fake broker, one behaviour per test: a publish
 * succeeds only when confirmed and not returned, and every other outcome is
 * an error of its own kind for that publish alone.
 */
describe('ConfirmPublisher', () => {
  let broker: FakeBroker;
  let publisher: ConfirmPublisher;
  let channel: FakeChannel;
  const observed: { exchange: string; failure?: PublishFailure }[] = [];

  const start = async (timeoutMs = 2000) => {
    broker = fakeConnection();
    observed.length = 0;
    publisher = new ConfirmPublisher(broker.connection, log, timeoutMs, (exchange, _seconds, failure) => observed.push({ exchange, failure }));
    expect(await publisher.waitForChannel(1000)).to.equal(true);
    channel = broker.latest();
  };

  afterEach(async () => {
    await publisher.close();
  });

  const reasonOf = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(PublishError);
    return (err as PublishError).reason;
  };

  it('publishes persistent and mandatory on a confirm channel, and resolves on the confirm', async () => {
    await start();
    expect(channel.confirm).to.equal(true);
    const sent = publisher.publish(request('a'));
    expect(channel.sent.map((s) => [s.messageId, s.options.persistent, s.options.mandatory])).to.deep.equal([['a', true, true]]);
    channel.confirmNext();
    await sent;
    expect(observed).to.deep.equal([{ exchange: 'tweets', failure: undefined }]);
  });

  it('fails a returned publish even though its confirm follows, and only that one', async () => {
    await start();
    const outcomes = publisher.publishAll([request('a'), request('b'), request('c')]);
    channel.confirmNext();
    channel.returnNext('NO_ROUTE');
    channel.confirmNext();
    const [a, b, c] = await outcomes;
    expect(a).to.equal(null);
    expect(b?.reason).to.equal('returned');
    expect(b?.message).to.include('NO_ROUTE').and.include('exchange tweets');
    expect(c).to.equal(null);
    expect(observed.map((o) => o.failure)).to.deep.equal([undefined, 'returned', undefined]);
  });

  it('fails a nacked publish as nacked', async () => {
    await start();
    const sent = publisher.publish(request('a'));
    channel.nackNext();
    expect(await reasonOf(sent)).to.equal('nacked');
  });

  it('fails at once, sending nothing, while there is no channel', async () => {
    await start();
    broker.setConnected(false);
    channel.closeFromBroker();
    await new Promise((r) => setImmediate(r));
    expect(publisher.isReady()).to.equal(false);
    expect(await reasonOf(publisher.publish(request('a')))).to.equal('not-connected');
    expect(channel.sent).to.have.length(0);
  });

  it('fails what waited for a confirm when its channel closes, and publishes on the next channel', async () => {
    await start();
    const waiting = publisher.publish(request('a'));
    channel.closeFromBroker();
    expect(await reasonOf(waiting)).to.equal('channel-closed');
    expect(await publisher.waitForChannel(3000)).to.equal(true);
    const next = broker.latest();
    expect(next).to.not.equal(channel);
    const again = publisher.publish(request('a'));
    expect(next.sent.map((s) => s.messageId)).to.deep.equal(['a']);
    next.confirmNext();
    await again;
  });

  it('times out a publish whose confirm never comes, and says when a broker alarm blocks the connection', async () => {
    await start(50);
    broker.setBlocked(true);
    const sent = publisher.publish(request('a'));
    const err = await sent.then(
      () => undefined,
      (e: unknown) => e as PublishError,
    );
    expect(err?.reason).to.equal('timeout');
    expect(err?.message).to.include('blocked by a broker alarm');
    expect(publisher.isReady(), 'not ready while blocked').to.equal(false);
  });

  it('settles each publish of a pipelined batch by its own confirm, in order, whatever the order they settle in', async () => {
    await start();
    const outcomes = publisher.publishAll(['a', 'b', 'c', 'd'].map(request));
    expect(channel.pendingConfirms()).to.equal(4);
    channel.confirmNext();
    channel.nackNext();
    channel.confirmNext();
    channel.returnNext();
    expect((await outcomes).map((o) => o?.reason ?? 'ok')).to.deep.equal(['ok', 'nacked', 'ok', 'returned']);
  });
});
