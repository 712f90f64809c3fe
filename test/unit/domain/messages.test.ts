import { expect } from 'chai';
import { PermanentError } from '../../../src/domain/errors';
import { buildEvent, decodeDelivery, type RawDelivery } from '../../../src/domain/messages';
import { newId } from '../../../src/domain/ids';

const tweet = () => ({ tweetId: newId(), authorId: newId(), authorHandle: 'ada', text: 'hello #world', createdAt: new Date().toISOString() });

function delivery(over: Partial<RawDelivery> = {}): RawDelivery {
  return {
    content: Buffer.from(JSON.stringify(tweet())),
    contentType: 'application/json',
    messageId: newId(),
    type: 'tweet.created',
    headers: { 'x-schema-version': '1.0' },
    ...over,
  };
}

function parkReason(raw: RawDelivery): string {
  try {
    decodeDelivery(raw, ['tweet.created']);
  } catch (err) {
    expect(err).to.be.instanceOf(PermanentError);
    return (err as Error).message;
  }
  throw new Error('expected the delivery to be refused');
}

describe('message schemas', () => {
  it('builds an event with its route, version and a traceparent that claims no sampling decision nobody made', () => {
    const event = buildEvent('tweet.created', tweet(), { correlationId: 'req-1' });
    expect(event).to.include({ exchange: 'tweets', routingKey: 'tweet.created', schemaVersion: '1.0', correlationId: 'req-1' });
    expect(event.traceparent).to.match(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  });

  it('publishes user.unfollowed on user.events as schema 1.1, and decodes it for a consumer that handles it', () => {
    const body = { followerId: newId(), followeeId: newId(), at: new Date().toISOString() };
    const event = buildEvent('user.unfollowed', body);
    expect(event).to.include({ exchange: 'user.events', routingKey: 'user.unfollowed', schemaVersion: '1.1' });
    const raw = delivery({ type: 'user.unfollowed', content: Buffer.from(event.payload), headers: { 'x-schema-version': '1.1' } });
    const decoded = decodeDelivery(raw, ['user.unfollowed']);
    expect(decoded.kind === 'message' && decoded.message.body).to.deep.equal(body);
    expect(decodeDelivery(raw, ['user.updated', 'user.followed']).kind).to.equal('unhandled');
  });

  it('refuses to publish a body that breaks its schema', () => {
    expect(() => buildEvent('tweet.created', { ...tweet(), tweetId: 'nope' })).to.throw(/tweetId/);
  });

  it('decodes a valid delivery, ignoring unknown fields (minor versions add them)', () => {
    const body = { ...tweet(), futureField: 1 };
    const result = decodeDelivery(delivery({ content: Buffer.from(JSON.stringify(body)), headers: { 'x-schema-version': '1.7' } }), ['tweet.created']);
    expect(result.kind).to.equal('message');
    if (result.kind === 'message') expect(result.message.body).to.not.have.property('futureField');
  });

  it('reports a known type this consumer does not handle as unhandled, not an error', () => {
    const raw = delivery({ type: 'user.created', content: Buffer.from('{}') });
    expect(decodeDelivery(raw, ['tweet.created']).kind).to.equal('unhandled');
  });

  it('parks what can never be processed, saying why', () => {
    expect(parkReason(delivery({ messageId: undefined }))).to.match(/missing message_id/);
    expect(parkReason(delivery({ contentType: 'text/plain' }))).to.match(/content type/);
    expect(parkReason(delivery({ contentEncoding: 'gzip' }))).to.match(/content encoding/);
    expect(parkReason(delivery({ headers: { 'x-schema-version': '2.0' } }))).to.match(/newer/);
    expect(parkReason(delivery({ type: 'tweet.deleted' }))).to.match(/unknown message type/);
    expect(parkReason(delivery({ content: Buffer.from('{not json') }))).to.match(/not valid JSON/);
    expect(parkReason(delivery({ content: Buffer.from('{"tweetId":1}') }))).to.match(/does not match tweet.created/);
    expect(parkReason(delivery({ messageId: 'x'.repeat(101) }))).to.match(/longer than/);
  });

  it('accepts identity encoding and a charset parameter', () => {
    expect(decodeDelivery(delivery({ contentEncoding: 'identity', contentType: 'application/json; charset=utf-8' }), ['tweet.created']).kind).to.equal(
      'message',
    );
  });
});
