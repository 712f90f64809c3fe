import { expect } from 'chai';
import { parseTraceparent } from '../../../src/observability/traceContext';
import { createUser, startApi, type ApiHarness } from '../api/harness';

/** The trace context of the events a request writes while tracing is off (the default): no SDK, no span, a valid header all the same. */
describe('events of requests with tracing off', () => {
  let api: ApiHarness;
  let alice: { id: string; token: string };
  beforeEach(async () => {
    api = await startApi();
    alice = await createUser(api);
  });
  afterEach(() => api.close());

  async function tweetEvent(headers: Record<string, string>): Promise<{ traceparent: string; tracestate: string | null }> {
    const res = await api.request('POST', '/tweets', { token: alice.token, body: { text: 'trace me' }, headers });
    expect(res.status).to.equal(201);
    const row = (await api.db('outbox').where({ type: 'tweet.created' }).orderBy('seq', 'desc').first('traceparent', 'tracestate')) as {
      traceparent: string;
      tracestate: string | null;
    };
    return row;
  }

  it("carry the caller's traceparent and tracestate unchanged: its span is their parent, its sampled flag its decision", async () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    expect(await tweetEvent({ traceparent, tracestate: 'rojo=00f067aa0ba902b7, congo=t61rcWkgMzE' })).to.deep.equal({
      traceparent,
      tracestate: 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE',
    });
    const unsampled = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00';
    expect(await tweetEvent({ traceparent: unsampled })).to.deep.equal({ traceparent: unsampled, tracestate: null });
  });

  it('without one, start a trace named after the request id, under a parent id of their own, not flagged sampled', async () => {
    const requestId = '0190f1d2-3c4b-7a5e-8f60-123456789abc';
    const row = await tweetEvent({ 'x-request-id': requestId });
    const parsed = parseTraceparent(row.traceparent);
    expect(parsed?.traceId).to.equal(requestId.replace(/-/g, ''));
    expect(parsed?.flags).to.equal(0);
    expect(row.tracestate).to.equal(null);
  });

  it('ignore an invalid traceparent, and the tracestate that came with it', async () => {
    const row = await tweetEvent({ traceparent: '00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01', tracestate: 'rojo=1' });
    const parsed = parseTraceparent(row.traceparent);
    expect(parsed?.traceId).to.match(/^[0-9a-f]{32}$/);
    expect(parsed?.traceId).to.not.equal('0af7651916cd43dd8448eb211c80319c');
    expect(parsed?.flags).to.equal(0);
    expect(row.tracestate).to.equal(null);
  });
});
