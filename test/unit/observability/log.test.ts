import { Writable } from 'node:stream';
import { expect } from 'chai';
import { traceIdFor } from '../../../src/api/middleware/requestId';
import { createLogger, deliveryLogger, logFormat } from '../../../src/log';

describe('logs', () => {
  it('are pretty at a terminal or in development, JSON otherwise, and WARREN_LOG_FORMAT decides over both', () => {
    expect(logFormat({}, true)).to.equal('pretty');
    expect(logFormat({ NODE_ENV: 'development' }, false)).to.equal('pretty');
    expect(logFormat({}, false)).to.equal('json');
    expect(logFormat({ NODE_ENV: 'production' }, false)).to.equal('json');
    expect(logFormat({ WARREN_LOG_FORMAT: 'json' }, true)).to.equal('json');
    expect(logFormat({ WARREN_LOG_FORMAT: 'pretty', NODE_ENV: 'production' }, false)).to.equal('pretty');
  });

  it("bind a delivery's correlation id as requestId and its traceparent's trace, and nothing a foreign header forges", () => {
    const lines: Record<string, unknown>[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
        done();
      },
    });
    const base = createLogger('worker-analytics', 'info', stream);
    deliveryLogger(base, { correlationId: 'abc', headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } }).info('one');
    deliveryLogger(base, { headers: { traceparent: 'x'.repeat(5000) } }).info('two');
    expect(lines[0]).to.include({ msg: 'one', requestId: 'abc', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', service: 'worker-analytics' });
    expect(lines[1]).to.not.have.any.keys('requestId', 'traceId');
  });

  it("start a request's trace from its request id when that is a UUID", () => {
    expect(traceIdFor('0192f0c4-7d3e-4b8a-9c1d-2e3f4a5b6c7d')).to.equal('0192f0c47d3e4b8a9c1d2e3f4a5b6c7d');
    expect(traceIdFor('0192F0C4-7D3E-4B8A-9C1D-2E3F4A5B6C7D')).to.equal('0192f0c47d3e4b8a9c1d2e3f4a5b6c7d');
    const random = traceIdFor('not-a-uuid');
    expect(random).to.match(/^[0-9a-f]{32}$/);
    expect(traceIdFor('not-a-uuid')).to.not.equal(random);
    expect(traceIdFor('00000000-0000-0000-0000-000000000000')).to.not.equal('0'.repeat(32));
  });
});
