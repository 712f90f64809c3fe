import { expect } from 'chai';
import type { MessageProperties } from 'amqplib';
import { parkedSince } from '../../../src/ops/dlq';
import { replaySafeAgeMs } from '../../../src/db/inbox';

// Headers as amqplib decodes them off the wire (its XDeath type knows no delivery_limit).
const props = (p: { timestamp?: number; headers?: Record<string, unknown> }): MessageProperties => ({ headers: {}, ...p }) as unknown as MessageProperties;

/** How old a parked message is, for the replay's refusal of what may be older than its inbox records. */
describe('parked message age', function () {
  it('is the earliest time the message carries: timestamp (seconds), first failure, any x-death', function () {
    const t = Date.parse('2026-01-10T00:00:00Z');
    expect(parkedSince(props({ timestamp: t / 1000, headers: { 'x-warren-first-failure': '2026-01-11T00:00:00.000Z' } }))).to.equal(t);
    expect(parkedSince(props({ timestamp: t / 1000 + 86_400, headers: { 'x-warren-first-failure': '2026-01-10T00:00:00.000Z' } }))).to.equal(t);
    const death = (seconds: number) => ({ reason: 'delivery_limit', queue: 'q', time: { '!': 'timestamp', value: seconds } });
    expect(parkedSince(props({ headers: { 'x-death': [death(t / 1000 + 60), death(t / 1000)] } }))).to.equal(t);
    expect(parkedSince(props({ headers: { 'x-warren-first-failure': 'not a time' } }))).to.equal(null);
    expect(parkedSince(props({}))).to.equal(null);
  });

  it('may be the retention less a day, or less a tenth of a shorter retention', function () {
    expect(replaySafeAgeMs(14)).to.equal(13 * 86_400_000);
    expect(replaySafeAgeMs(1 / 24)).to.be.closeTo(54 * 60_000, 1);
  });
});
