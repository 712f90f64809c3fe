import { expect } from 'chai';
import { newId } from '../../../src/domain/ids';
import { buildEvent } from '../../../src/domain/messages';
import { formatTraceparent, incomingTrace, MAX_TRACESTATE_MEMBERS, parseTraceparent, parseTracestate } from '../../../src/observability/traceContext';
import { toPublishRequest } from '../../../src/outbox/relay';
import type { OutboxRow } from '../../../src/outbox/store';

// The examples of the W3C Trace Context recommendation.
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const SAMPLED = `00-${TRACE}-${SPAN}-01`;
const follow = () => ({ followerId: newId(), followeeId: newId(), at: new Date().toISOString() });

describe('W3C trace context', () => {
  describe('traceparent', () => {
    it('reads the trace id, the parent id and the flags of a version-00 header', () => {
      expect(parseTraceparent(SAMPLED)).to.deep.equal({ traceId: TRACE, spanId: SPAN, flags: 1 });
      expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)).to.deep.equal({ traceId: TRACE, spanId: SPAN, flags: 0 });
      expect(parseTraceparent(`00-${TRACE}-${SPAN}-09`)?.flags).to.equal(9);
    });

    it('ignores a header that is not one: wrong shape, upper case, all-zero ids, version ff, extra fields on version 00', () => {
      for (const bad of [
        undefined,
        42,
        '',
        'garbage',
        `00-${TRACE.toUpperCase()}-${SPAN}-01`,
        `00-${'0'.repeat(32)}-${SPAN}-01`,
        `00-${TRACE}-${'0'.repeat(16)}-01`,
        `ff-${TRACE}-${SPAN}-01`,
        `00-${TRACE}-${SPAN}-01-extra`,
        `00-${TRACE}-${SPAN}-1`,
        `00-${TRACE.slice(1)}-${SPAN}-01`,
        ` ${SAMPLED}`,
        `0-${TRACE}-${SPAN}-01`,
        'x'.repeat(5000),
      ]) {
        expect(parseTraceparent(bad), String(bad)).to.equal(undefined);
      }
    });

    it('reads a later version by the fields version 00 has, and what it adds after a dash is let be', () => {
      expect(parseTraceparent(`01-${TRACE}-${SPAN}-01-whatever-comes`)).to.deep.equal({ traceId: TRACE, spanId: SPAN, flags: 1 });
      expect(parseTraceparent(`01-${TRACE}-${SPAN}-01x`)).to.equal(undefined);
    });

    it('is written as version 00 with the sampled flag only as decided', () => {
      expect(formatTraceparent(TRACE, SPAN, true)).to.equal(SAMPLED);
      expect(formatTraceparent(TRACE, SPAN, false)).to.equal(`00-${TRACE}-${SPAN}-00`);
      expect(parseTraceparent(formatTraceparent(TRACE, SPAN, false))).to.deep.equal({ traceId: TRACE, spanId: SPAN, flags: 0 });
    });
  });

  describe('tracestate', () => {
    it('is kept as received, in order, members trimmed and empty ones dropped; several header lines are one list', () => {
      expect(parseTracestate('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE')).to.equal('rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
      expect(parseTracestate(' rojo=1 , ,congo=2 ')).to.equal('rojo=1,congo=2');
      expect(parseTracestate(['rojo=1', 'congo=2'])).to.equal('rojo=1,congo=2');
      expect(parseTracestate('tenant1@vendor=x')).to.equal('tenant1@vendor=x');
    });

    it('is dropped whole when it cannot be trusted: a malformed member, a key twice, too many members, too long', () => {
      expect(parseTracestate('Rojo=1')).to.equal(undefined);
      expect(parseTracestate('rojo')).to.equal(undefined);
      expect(parseTracestate('rojo=a,b')).to.equal(undefined);
      expect(parseTracestate('rojo=1,rojo=2')).to.equal(undefined);
      expect(parseTracestate('rojo=has,comma')).to.equal(undefined);
      const many = Array.from({ length: MAX_TRACESTATE_MEMBERS + 1 }, (_, i) => `k${i}=v`).join(',');
      expect(parseTracestate(many)).to.equal(undefined);
      expect(parseTracestate(many.split(',').slice(1).join(','))).to.be.a('string');
      expect(parseTracestate(`a=${'v'.repeat(255)},b=${'v'.repeat(255)}`)).to.equal(undefined);
      expect(parseTracestate('')).to.equal(undefined);
      expect(parseTracestate(undefined)).to.equal(undefined);
    });

    it('comes in only with a valid traceparent: without one it belongs to no trace', () => {
      expect(incomingTrace(SAMPLED, 'rojo=1')).to.deep.equal({
        parent: { traceId: TRACE, spanId: SPAN, flags: 1 },
        headers: { traceparent: SAMPLED, tracestate: 'rojo=1' },
      });
      expect(incomingTrace(SAMPLED, 'Bad Entry')).to.deep.equal({ parent: { traceId: TRACE, spanId: SPAN, flags: 1 }, headers: { traceparent: SAMPLED } });
      expect(incomingTrace('nonsense', 'rojo=1')).to.equal(undefined);
      expect(incomingTrace(undefined, 'rojo=1')).to.equal(undefined);
    });

    it("passes a later version's context on as version 00, keeping its flags", () => {
      expect(incomingTrace(`01-${TRACE}-${SPAN}-03-more`, undefined)?.headers).to.deep.equal({ traceparent: `00-${TRACE}-${SPAN}-03` });
    });
  });

  describe('on an event written with tracing off', () => {
    it("carries the caller's traceparent and tracestate unchanged", () => {
      const event = buildEvent('user.followed', follow(), { trace: { traceparent: SAMPLED, tracestate: 'rojo=1' } });
      expect(event.traceparent).to.equal(SAMPLED);
      expect(event.tracestate).to.equal('rojo=1');
    });

    it("without a caller's context, starts a valid traceparent in the request's trace that does not claim to be sampled", () => {
      const event = buildEvent('user.followed', follow(), { traceId: TRACE });
      const parsed = parseTraceparent(event.traceparent);
      expect(parsed?.traceId).to.equal(TRACE);
      expect(parsed?.flags).to.equal(0);
      expect(parsed?.spanId).to.match(/^[0-9a-f]{16}$/);
      expect(event).not.to.have.property('tracestate');
    });
  });

  describe("on the relay's publish", () => {
    const row = (tracestate: string | null): OutboxRow => ({
      seq: 1,
      message_id: 'm1',
      type: 'user.followed',
      exchange: 'user.events',
      routing_key: '',
      payload: '{}',
      correlation_id: 'req-1',
      traceparent: SAMPLED,
      tracestate,
      schema_version: '1.0',
      created_at: Date.now(),
      attempts: 0,
    });

    it('sends the tracestate stored with the row, and no header when there is none', () => {
      expect(toPublishRequest(row('rojo=1')).properties.headers).to.deep.equal({ 'x-schema-version': '1.0', traceparent: SAMPLED, tracestate: 'rojo=1' });
      expect(toPublishRequest(row(null)).properties.headers).to.deep.equal({ 'x-schema-version': '1.0', traceparent: SAMPLED });
    });

    it("sends a producer span's context in place of the row's when given one", () => {
      const producer = formatTraceparent(TRACE, 'b7ad6b7169203331', true);
      expect(toPublishRequest(row('rojo=1'), { traceparent: producer, tracestate: 'rojo=1' }).properties.headers).to.include({
        traceparent: producer,
        tracestate: 'rojo=1',
      });
      expect(toPublishRequest(row('rojo=1'), { traceparent: producer }).properties.headers).not.to.have.property('tracestate');
    });
  });
});
