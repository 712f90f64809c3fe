/** @file What the index keeps of one park, pure: Warren's headers or the broker's x-death, the park's key, replays, search text. */
import { expect } from 'chai';
import { parkRecord } from '../../../src/console/parkRecord';
import { brokerPark, warrenPark } from '../../support/parks';

describe('console: park records', function () {
  it("describes a park by Warren's consumer from its headers", function () {
    const r = parkRecord(warrenPark({ messageId: 'm-1', error: 'PermanentError: no such user', kind: 'permanent', body: { text: 'Hello Ada' } }));
    expect(r).to.include({
      queue: 'analytics.tweets',
      originalQueue: 'analytics.tweets',
      messageId: 'm-1',
      type: 'tweet.created',
      kind: 'permanent',
      attempts: 1,
      reason: 'PermanentError: no such user',
      lastFailure: '2026-01-01T00:10:00.000Z',
      parkedAt: Date.parse('2026-01-01T00:10:00.000Z'),
      bodyEncoding: 'utf8',
      body: '{"text":"Hello Ada"}',
      replayCount: 0,
      replayId: null,
    });
    expect(r.properties).to.include({ messageId: 'm-1', appId: 'warren-api' });
    expect(r.properties).not.to.have.property('headers');
    expect(r.searchText).to.include('hello ada').and.include('permanenterror: no such user');
    // The earliest it could have been applied: its timestamp (2023), before its first failure.
    expect(r.since).to.equal(1_700_000_000_000);
  });

  it('describes a crash loop the broker parked from x-death', function () {
    const r = parkRecord(brokerPark({ messageId: 'm-2', at: Date.parse('2026-01-02T03:04:05Z') }));
    expect(r).to.include({
      kind: 'crash-loop',
      reason: 'delivery_limit',
      attempts: null,
      originalQueue: 'analytics.tweets',
      parkedAt: Date.parse('2026-01-02T03:04:05Z'),
    });
  });

  it('gives every copy of one park the same key, and another park of the same message another', function () {
    const park = warrenPark({ messageId: 'm-3' });
    expect(parkRecord(park).parkKey).to.equal(parkRecord({ ...park, content: Buffer.from(park.content) }).parkKey);
    expect(parkRecord(warrenPark({ messageId: 'm-3', lastFailure: '2026-01-01T00:20:00.000Z' })).parkKey).not.to.equal(parkRecord(park).parkKey);
    expect(parkRecord(warrenPark({ messageId: 'm-4' })).parkKey).not.to.equal(parkRecord(park).parkKey);
    expect(parkRecord(warrenPark({ messageId: 'm-3', queue: 'notifications.user-events' })).parkKey).not.to.equal(parkRecord(park).parkKey);
  });

  it('says how often a message parked again had been replayed, and keeps a body that is not UTF-8 as base64', function () {
    const again = parkRecord(warrenPark({ headers: { 'x-warren-replay-count': 2, 'x-warren-replay-id': 'r-1' } }));
    expect(again).to.include({ replayCount: 2, replayId: 'r-1' });
    expect(parkRecord(warrenPark({ headers: { 'x-warren-replay-count': 'lots' } })).replayCount).to.equal(0);
    const binary = parkRecord({ ...warrenPark(), content: Buffer.from([0xff, 0xfe, 0x00]) });
    expect(binary).to.include({ bodyEncoding: 'base64', body: '//4A' });
  });
});
