import http from 'node:http';
import { expect } from 'chai';
import { freePort, TestSystem, TEST_DB, waitFor } from '../support/system';

/**
 * `warren api` and `warren worker analytics` as processes, tracing turned on
 * by the standard OTEL_* variables alone, exporting OTLP over HTTP to a
 * collector this test stands in for. The batch processor is told to wait a
 * minute, so what arrives was sent by the flush of each process's shutdown.
 */
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
}

interface Received {
  service: string;
  span: OtlpSpan;
}

function collector(received: Received[]): http.Server {
  return http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans: { resource: { attributes: { key: string; value: { stringValue?: string } }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
        };
        for (const rs of body.resourceSpans) {
          const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
          for (const ss of rs.scopeSpans) for (const span of ss.spans) received.push({ service, span });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
}

describe(`tracing exported over OTLP by the processes (${TEST_DB})`, function () {
  this.timeout(120_000);
  const sys = new TestSystem();
  const received: Received[] = [];
  const server = collector(received);

  before(async () => {
    await sys.setUp();
    const port = await freePort();
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    Object.assign(sys.env, {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_BSP_SCHEDULE_DELAY: '60000',
      // The access log's lines, to check the trace they name.
      WARREN_LOG_LEVEL: 'info',
    });
  });

  after(async () => {
    await sys.tearDown();
    await new Promise((resolve) => server.close(resolve));
  });

  it("sends each process's spans when it stops, one trace from POST /tweets to the analytics handler", async () => {
    const api = await sys.startApi();
    const worker = await sys.startWorker('analytics');
    const author = await sys.createUser('otlp_author');
    const res = await sys.request('POST', '/tweets', { token: author.token, body: { text: 'exported #otel' } });
    expect(res.status).to.equal(201);
    await waitFor('the tweet counted', async () => (await sys.request('GET', `/analytics/users/${author.id}`)).json?.tweetCount === 1, 30_000);
    expect(received, 'nothing sent before the shutdown flush').to.deep.equal([]);
    expect(await worker.stop(), worker.tail()).to.equal(0);
    expect(await api.stop(), api.tail()).to.equal(0);

    const named = (name: string) => {
      const found = received.filter((r) => r.span.name === name);
      expect(found, `${name} among ${received.map((r) => r.span.name).join(', ')}`).to.have.length.at.least(1);
      return found;
    };
    const [server] = named('POST /tweets');
    const traceId = server!.span.traceId;
    const ofTrace = received.filter((r) => r.span.traceId === traceId);
    const one = (name: string) => {
      const found = ofTrace.filter((r) => r.span.name === name);
      expect(found, `${name} in the tweet's trace`).to.have.length(1);
      return found[0]!;
    };
    const write = one('outbox write');
    const publish = one('publish tweets');
    const consume = one('process analytics.tweets');
    const handler = one('analytics handler');
    expect([server!, write, publish].map((r) => r.service)).to.deep.equal(['warren-api', 'warren-api', 'warren-api']);
    expect([consume, handler].map((r) => r.service)).to.deep.equal(['warren-worker-analytics', 'warren-worker-analytics']);
    expect(write.span.parentSpanId).to.equal(server!.span.spanId);
    expect(publish.span.parentSpanId).to.equal(write.span.spanId);
    expect(consume.span.parentSpanId).to.equal(publish.span.spanId);
    expect(handler.span.parentSpanId).to.equal(consume.span.spanId);
    named('POST /users');
    // The API's access log names the same trace.
    const logged = api.output.filter((l) => l.includes('"msg":"request"') && l.includes('"path":"/tweets"'));
    expect(
      logged.some((l) => l.includes(`"traceId":"${traceId}"`)),
      logged.join('\n'),
    ).to.equal(true);
  });
});
