/** @file The overview page's body: the figures, a chart of the last hour drawn as inline SVG (the pages run no script), the queues and the parks. */
import { formatRate } from '../ops/table';
import { html, type Html } from './html';
import type { HistoryPoint, Overview } from './overview';

const W = 720;
const H = 160;
const PAD = 30;

const num = (n: number | null) => (n === null ? '-' : String(n));
const rate = (n: number | null) => (n === null ? '-' : formatRate(n));
const seconds = (s: number | null) => (s === null ? '-' : s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(1)} s`);

/** Depth (left scale) and DLQ inflow per step (right scale) over the points' span. */
export function chart(points: HistoryPoint[], incrSeconds: number): Html {
  if (points.length < 2) return html`<p class="muted">The broker has no samples of the last hour yet (it keeps one a minute).</p>`;
  const t0 = Date.parse(points[0]!.at);
  const span = Math.max(1, Date.parse(points[points.length - 1]!.at) - t0);
  const maxDepth = Math.max(1, ...points.map((p) => p.depth));
  const maxInflow = Math.max(1, ...points.map((p) => p.dlqInflow));
  const x = (p: HistoryPoint) => (PAD + ((Date.parse(p.at) - t0) / span) * (W - 2 * PAD)).toFixed(1);
  const y = (v: number, max: number) => (H - PAD + -(v / max) * (H - 2 * PAD)).toFixed(1);
  const line = (f: (p: HistoryPoint) => string) => points.map((p) => `${x(p)},${f(p)}`).join(' ');
  const minutes = Math.round(span / 60_000);
  return html`<svg
    class="chart"
    role="img"
    aria-label="work-queue depth and DLQ inflow, last ${String(minutes)} minutes"
    width="${String(W)}"
    height="${String(H)}"
    viewBox="0 0 ${String(W)} ${String(H)}"
  >
    <line x1="${String(PAD)}" y1="${String(H - PAD)}" x2="${String(W - PAD)}" y2="${String(H - PAD)}" stroke="#999" />
    <polyline id="depth" fill="none" stroke="#2a6ebb" stroke-width="2" points="${line((p) => y(p.depth, maxDepth))}" />
    <polyline id="inflow" fill="none" stroke="#c0392b" stroke-width="2" points="${line((p) => y(p.dlqInflow, maxInflow))}" />
    <text x="${String(PAD)}" y="14" font-size="11" fill="#2a6ebb">depth (max ${String(maxDepth)})</text>
    <text x="${String(W - PAD)}" y="14" font-size="11" fill="#c0392b" text-anchor="end">parked per ${String(incrSeconds)} s (max ${String(maxInflow)})</text>
    <text x="${String(PAD)}" y="${String(H - 8)}" font-size="11" fill="#777">${String(minutes)} min ago</text>
    <text x="${String(W - PAD)}" y="${String(H - 8)}" font-size="11" fill="#777" text-anchor="end">${points[points.length - 1]!.at.slice(11, 16)} UTC</text>
  </svg>`;
}

export function overviewBody(o: Overview): Html {
  const outbox =
    'error' in o.outbox
      ? html`<p class="again" id="outbox">Outbox: the API's ${o.outbox.source} did not answer (${o.outbox.error}).</p>`
      : html`<p id="outbox">
          Outbox backlog <strong>${num(o.outbox.backlog)}</strong> · relay
          ${o.outbox.relayUp === null ? 'not reported' : o.outbox.relayUp ? 'up' : html`<span class="again">failing</span>`} · relay lag
          ${seconds(o.outbox.relayLagRecentSeconds)} recently, ${seconds(o.outbox.relayLagMeanSeconds)} on average over ${num(o.outbox.relayedTotal)} rows
        </p>`;
  const queues =
    'error' in o.broker
      ? html`<p class="again">The management API did not answer: ${o.broker.error}</p>`
      : html`<table id="queues">
          <tr>
            <th>Queue</th>
            <th>Role</th>
            <th>Ready</th>
            <th>Unacked</th>
            <th>Consumers</th>
            <th>Publish/s</th>
            <th>Deliver/s</th>
            <th>Ack/s</th>
          </tr>
          ${o.broker.queues.map(
            (q) =>
              html`<tr>
                <td>${q.name}</td>
                <td>${q.role}</td>
                <td>${num(q.ready)}</td>
                <td>${num(q.unacked)}</td>
                <td>${q.role === 'work' && q.consumers === 0 ? html`<span class="again">0</span>` : num(q.consumers)}</td>
                <td>${rate(q.publishRate)}</td>
                <td>${rate(q.deliverRate)}</td>
                <td>${rate(q.ackRate)}</td>
              </tr>`,
          )}
        </table>`;
  return html`<p class="muted">As of ${o.at}; the broker's figures lag by up to 5 s; this page reloads itself.</p>
    ${outbox}
    <h2>Last hour</h2>
    ${'error' in o.history ? html`<p class="again">No history: ${o.history.error}</p>` : chart(o.history.points, o.history.incrSeconds)}
    <h2>Parked, per DLQ</h2>
    <table id="dlqs">
      <tr>
        <th>DLQ</th>
        <th>In the DLQ (broker)</th>
        <th>Indexed as parked</th>
      </tr>
      ${o.parked.byDlq.map(
        (d) =>
          html`<tr>
            <td><a href="/?queue=${encodeURIComponent(d.queue)}">${d.dlq}</a></td>
            <td>${num(d.inDlq)}</td>
            <td>${String(d.indexed)}</td>
          </tr>`,
      )}
    </table>
    <h2>Parked, per reason</h2>
    <table id="reasons">
      <tr>
        <th>Queue</th>
        <th>Kind</th>
        <th>Count</th>
        <th>Reason (normalised)</th>
      </tr>
      ${o.parked.byReason.map(
        (r) =>
          html`<tr>
            <td>${r.queue}</td>
            <td>${r.kind}</td>
            <td>${String(r.count)}</td>
            <td>${r.reason}</td>
          </tr>`,
      )}
    </table>
    <h2>Queues</h2>
    ${queues}`;
}
