import { expect } from 'chai';
import { PermanentError, TransientError } from '../../../src/domain/errors';
import {
  decideFailure,
  failureHeaders,
  MAX_ERROR_BYTES,
  MAX_WARREN_HEADER_BYTES,
  previousAttempts,
  truncateUtf8,
  warrenHeaderBytes,
  type DelayStep,
} from '../../../src/consume/retry';

const steps: DelayStep[] = ['5s', '30s', '2m'].map((name, i) => ({
  name,
  exchange: `warren.delay.${name}`,
  queue: `warren.delay.${name}`,
  ttlMs: [5000, 30000, 120000][i]!,
}));

describe('retry decisions', () => {
  it('parks a permanent error at once, whatever the attempt', () => {
    expect(decideFailure(new PermanentError('bad body'), 1, 5, steps)).to.deep.equal({ action: 'park', kind: 'permanent', attempt: 1 });
  });

  it('backs off with growing delays, repeating the last step', () => {
    const delays = [1, 2, 3, 4].map((attempt) => {
      const d = decideFailure(new TransientError('busy'), attempt, 6, steps);
      return d.action === 'retry' ? d.step.name : d.kind;
    });
    expect(delays).to.deep.equal(['5s', '30s', '2m', '2m']);
  });

  it('parks as exhausted after the configured attempts', () => {
    expect(decideFailure(new Error('boom'), 3, 3, steps)).to.deep.equal({ action: 'park', kind: 'exhausted', attempt: 3 });
    expect(decideFailure(new Error('boom'), 2, 3, steps).action).to.equal('retry');
  });

  it('reads previous attempts from the header, tolerating junk', () => {
    expect(previousAttempts({})).to.equal(0);
    expect(previousAttempts({ 'x-warren-attempts': 2 })).to.equal(2);
    expect(previousAttempts({ 'x-warren-attempts': Buffer.from('3') })).to.equal(3);
    expect(previousAttempts({ 'x-warren-attempts': 'lots' })).to.equal(0);
  });
});

describe('failure headers', () => {
  const now = new Date('2026-11-25T10:00:00.000Z');

  it("keeps a replayed message's replay count and id on its retry and its next park, and only in the shape a replay writes them", () => {
    const rec = { error: new Error('busy'), attempt: 1, queue: 'analytics.tweets', exchange: 'warren.return', routingKey: 'analytics.tweets', now };
    const parked = failureHeaders({ 'x-warren-replay-count': 2, 'x-warren-replay-id': 'r-1' }, rec, 'permanent');
    expect(parked).to.include({ 'x-warren-replay-count': 2, 'x-warren-replay-id': 'r-1' });
    expect(failureHeaders({}, rec)).not.to.have.any.keys('x-warren-replay-count', 'x-warren-replay-id');
    for (const count of [0, -1, 1.5, 'many', 2_000_000]) {
      expect(failureHeaders({ 'x-warren-replay-count': count, 'x-warren-replay-id': 'r' }, rec), String(count)).not.to.have.any.keys(
        'x-warren-replay-count',
        'x-warren-replay-id',
      );
    }
    expect(failureHeaders({ 'x-warren-replay-count': 1, 'x-warren-replay-id': 'x'.repeat(65) }, rec))
      .to.include({ 'x-warren-replay-count': 1 })
      .and.not.to.have.any.keys('x-warren-replay-id');
  });

  it('records the original route on the first failure and keeps it across retries', () => {
    const first = failureHeaders(
      { traceparent: 't' },
      { error: new Error('busy'), attempt: 1, queue: 'analytics.tweets', exchange: 'tweets', routingKey: 'tweet.created', now },
    );
    expect(first).to.include({
      traceparent: 't',
      'x-warren-attempts': 1,
      'x-warren-original-queue': 'analytics.tweets',
      'x-warren-original-exchange': 'tweets',
      'x-warren-original-routing-key': 'tweet.created',
      'x-warren-first-failure': now.toISOString(),
    });
    const later = new Date('2026-11-25T10:00:05.000Z');
    const second = failureHeaders(
      { ...first, 'x-death': [{ count: 1 }] },
      { error: new Error('still busy'), attempt: 2, queue: 'analytics.tweets', exchange: 'warren.return', routingKey: 'analytics.tweets', now: later },
      'exhausted',
    );
    expect(second).to.include({
      'x-warren-original-exchange': 'tweets',
      'x-warren-original-routing-key': 'tweet.created',
      'x-warren-first-failure': now.toISOString(),
      'x-warren-last-failure': later.toISOString(),
      'x-warren-error-kind': 'exhausted',
      'x-warren-error': 'Error: still busy',
    });
    expect(second).not.to.have.property('x-death');
  });

  it('keeps the error under 1 KiB and all of Warren headers under 8 KiB', () => {
    const huge = new Error('é'.repeat(100_000));
    const headers = failureHeaders({}, { error: huge, attempt: 1, queue: 'q', exchange: 'x'.repeat(5000), routingKey: 'k'.repeat(5000), now }, 'permanent');
    expect(Buffer.byteLength(String(headers['x-warren-error']))).to.be.at.most(MAX_ERROR_BYTES);
    expect(warrenHeaderBytes(headers)).to.be.below(MAX_WARREN_HEADER_BYTES);
  });

  it('truncates on a character boundary', () => {
    const cut = truncateUtf8('😀'.repeat(10), 10);
    expect(cut).to.not.include('\uFFFD');
    expect(Buffer.byteLength(cut)).to.be.at.most(10);
  });
});

describe('failure headers from a foreign publisher', () => {
  const now = new Date('2026-11-25T10:00:00.000Z');
  const rec = { error: new Error('bad'), attempt: 1, queue: 'analytics.tweets', exchange: 'tweets', routingKey: 'tweet.created', now };

  it('names the queue it failed in, whatever the message claimed', () => {
    const h = failureHeaders({ 'x-warren-original-queue': 'notifications.user-events' }, rec, 'permanent');
    expect(h['x-warren-original-queue']).to.equal('analytics.tweets');
  });

  it('ignores a first-failure time that is not a time, and stays small', () => {
    const h = failureHeaders({ 'x-warren-first-failure': 'f'.repeat(20_000), 'x-warren-original-queue': 'q'.repeat(20_000) }, rec, 'permanent');
    expect(h['x-warren-first-failure']).to.equal(now.toISOString());
    expect(warrenHeaderBytes(h)).to.be.below(MAX_WARREN_HEADER_BYTES);
  });

  it("drops the original's own headers that are too large to copy, keeps the others, and says so", () => {
    const h = failureHeaders({ big: 'b'.repeat(100_000), traceparent: 't' }, rec, 'permanent');
    expect(h).to.not.have.property('big');
    expect(h.traceparent).to.equal('t');
    expect(h['x-warren-headers-dropped']).to.equal('header "big" is larger than 16384 bytes');
    expect(h['x-warren-error-kind']).to.equal('permanent');
  });
});
