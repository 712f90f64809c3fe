import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ConsumerMetrics } from '../../../src/consume/metrics';
import { createRegistry, HttpMetrics, PublishMetrics, QueueMetrics, RelayMetrics } from '../../../src/observability/metrics';

const dashboardFile = path.resolve(__dirname, '..', '..', '..', '..', 'ops', 'grafana', 'warren.json');

interface Panel {
  title?: string;
  targets?: { expr?: string; legendFormat?: string }[];
  panels?: Panel[];
}

function expressions(panels: Panel[]): { title: string; expr: string }[] {
  return panels.flatMap((p) => [...(p.targets ?? []).map((t) => ({ title: p.title ?? '', expr: t.expr ?? '' })), ...expressions(p.panels ?? [])]);
}

function expressionsAndLegends(panels: Panel[]): string[] {
  return panels.flatMap((p) => [...(p.targets ?? []).map((t) => t.legendFormat ?? ''), ...expressionsAndLegends(p.panels ?? [])]);
}

/** Every name a process can export: Warren's own metrics and the default process metrics. */
async function exportedNames(): Promise<Set<string>> {
  const registry = createRegistry('dashboard', { processMetrics: true });
  new HttpMetrics(registry);
  new PublishMetrics(registry);
  new RelayMetrics(registry);
  new ConsumerMetrics(registry);
  new QueueMetrics(registry, async () => []);
  const names = new Set<string>();
  for (const metric of await registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (metric.type.toString() === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(metric.name + suffix);
  }
  return names;
}

describe('ops: the Grafana dashboard', () => {
  it('uses only metric names that Warren exports, and shows every Warren metric', async () => {
    const dashboard = JSON.parse(fs.readFileSync(dashboardFile, 'utf8')) as { panels: Panel[]; templating: { list: { query?: unknown }[] } };
    const exprs = expressions(dashboard.panels);
    expect(exprs.length).to.be.greaterThan(10);
    const exported = await exportedNames();
    const used = new Set<string>();
    const templateQueries = dashboard.templating.list.map((t) => (typeof t.query === 'object' && t.query ? (t.query as { query: string }).query : String(t.query ?? '')));
    for (const { title, expr } of [...exprs, ...templateQueries.map((q) => ({ title: 'template', expr: q }))]) {
      for (const [name] of expr.matchAll(/\b(?:warren|process|nodejs)_[a-z0-9_]+\b/g)) {
        if (name === 'warren_service') continue; // the label (and the template variable), not a metric
        expect(exported.has(name), `${title}: ${name} is not a metric Warren exports`).to.equal(true);
        used.add(name.replace(/_(bucket|sum|count)$/, ''));
      }
    }
    // `service` belongs to the Prometheus Operator (it renames Warren's to exported_service): every selector, grouping and legend uses warren_service.
    for (const { title, expr } of [...exprs, ...templateQueries.map((q) => ({ title: 'template', expr: q }))]) {
      expect(expr, title).to.not.match(/(?<![a-z_])service\b/);
      expect(expr, title).to.not.include('$service');
    }
    const legends = expressionsAndLegends(dashboard.panels);
    for (const legend of legends) expect(legend, 'legend').to.not.include('{{service}}');
    const warrenMetrics = [...exported].filter((n) => n.startsWith('warren_') && !/_(bucket|sum|count)$/.test(n));
    for (const name of warrenMetrics) expect(used.has(name), `${name} is on no panel`).to.equal(true);
  });
});
