import { expect } from 'chai';
import { metricValue, parseMetrics } from '../../support/metricsText';
import { createUser, startApi, type ApiHarness } from './harness';

describe('api: /metrics and request durations', () => {
  let api: ApiHarness;
  beforeEach(async () => {
    api = await startApi();
  });
  afterEach(async () => {
    await api.close();
  });

  const scrape = async (): Promise<string> => {
    const res = await fetch(`${api.url}/metrics`);
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    return res.text();
  };

  it("counts each request under the router's pattern and its status, never the raw path", async () => {
    const user = await createUser(api);
    expect((await api.request('GET', `/users/${user.id}`)).status).to.equal(200);
    expect((await api.request('GET', `/users/${user.id}`)).status).to.equal(200);
    expect((await api.request('GET', '/users/0192f0c4-7d3e-7b8a-9c1d-2e3f4a5b6c7d')).status).to.equal(404);
    expect((await api.request('POST', '/tweets', { token: user.token, body: 'x', headers: { 'content-type': 'text/plain' } })).status).to.equal(415);
    expect((await api.request('DELETE', '/tweets')).status).to.equal(405);
    expect((await api.request('GET', `/no/such/${user.id}`)).status).to.equal(404);

    const text = await scrape();
    const count = (labels: Record<string, string>) => metricValue(text, 'warren_http_request_duration_seconds_count', labels);
    expect(count({ method: 'POST', route: '/users', status: '201' })).to.equal(1);
    expect(count({ method: 'GET', route: '/users/:id', status: '200' })).to.equal(2);
    expect(count({ method: 'GET', route: '/users/:id', status: '404' })).to.equal(1);
    // Refused before routing, still counted under its route.
    expect(count({ method: 'POST', route: '/tweets', status: '415' })).to.equal(1);
    expect(count({ method: 'DELETE', route: '/tweets', status: '405' })).to.equal(1);
    expect(count({ method: 'GET', route: 'unmatched', status: '404' })).to.equal(1);
    expect(metricValue(text, 'warren_http_request_duration_seconds_sum', { route: '/users/:id', status: '200' })).to.be.greaterThan(0);
    const routes = new Set(
      parseMetrics(text)
        .map((s) => s.labels.route)
        .filter(Boolean),
    );
    for (const route of routes) expect(route).not.to.include(user.id);
  });

  it('serves the text format, scrapes included', async () => {
    await scrape();
    const text = await scrape();
    expect(text).to.include('# TYPE warren_http_request_duration_seconds histogram');
    expect(metricValue(text, 'warren_http_request_duration_seconds_count', { method: 'GET', route: '/metrics', status: '200' })).to.equal(1);
  });
});
