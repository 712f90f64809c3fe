/** @file The overview's pure parts: the Prometheus figures it reads from the API's /metrics, the last hour's series from the broker's samples, and its chart. */
import { expect } from 'chai';
import { historyOf, metricValue } from '../../../src/console/overview';
import { chart } from '../../../src/console/overviewPage';
import type { QueueHistory } from '../../../src/topology/management';

const T = Date.parse('2026-01-10T12:00:00Z');
const min = (n: number) => T + n * 60_000;

function queue(name: string, depth: [number, number][], published?: [number, number][]): QueueHistory {
  return {
    name,
    vhost: 'v',
    type: 'quorum',
    durable: true,
    auto_delete: false,
    arguments: {},
    messages_details: { rate: 0, samples: depth.map(([t, sample]) => ({ timestamp: t, sample })) },
    ...(published ? { message_stats: { publish_details: { rate: 0, samples: published.map(([t, sample]) => ({ timestamp: t, sample })) } } } : {}),
  } as QueueHistory;
}

describe('console: overview figures', function () {
  it('reads a metric summed over its label sets, and null when the API does not expose it', function () {
    const text = [
      '# HELP warren_outbox_backlog Outbox events',
      '# TYPE warren_outbox_backlog gauge',
      'warren_outbox_backlog{warren_service="api"} 7',
      'warren_relay_lag_seconds_sum{warren_service="api"} 1.5',
      'warren_relay_lag_seconds_count{warren_service="api"} 30',
      'warren_relay_lag_seconds_bucket{le="0.1",warren_service="api"} 12',
      'warren_relay_up 1',
    ].join('\n');
    expect(metricValue(text, 'warren_outbox_backlog')).to.equal(7);
    expect(metricValue(text, 'warren_relay_lag_seconds_count')).to.equal(30);
    expect(metricValue(text, 'warren_relay_up')).to.equal(1);
    expect(metricValue(text, 'warren_relay_lag_seconds')).to.equal(null);
    expect(metricValue(text, 'warren_nothing')).to.equal(null);
  });

  it("sums the work queues' depth per step and turns the DLQs' publish counters into parks per step; other queues are left out", function () {
    const points = historyOf(
      [
        queue('analytics.tweets', [
          [min(2), 5],
          [min(1), 3],
          [min(0), 1],
        ]),
        // Sampled a few milliseconds off the step: the same step.
        queue('notifications.user-events', [
          [min(1) + 7, 10],
          [min(0) + 3, 10],
        ]),
        queue(
          'analytics.tweets.dlq',
          [[min(2), 9]],
          [
            [min(2), 9],
            [min(1), 4],
            [min(0), 4],
          ],
        ),
        queue('warren.parked.index', [[min(2), 1000]], [[min(2), 1000]]),
      ],
      ['analytics.tweets', 'notifications.user-events'],
      60,
    );
    expect(points).to.deep.equal([
      { at: new Date(min(0)).toISOString(), depth: 11, dlqInflow: 0 },
      { at: new Date(min(1)).toISOString(), depth: 13, dlqInflow: 0 },
      { at: new Date(min(2)).toISOString(), depth: 5, dlqInflow: 5 },
    ]);
  });

  it('draws both series over the span, or says there are no samples yet', function () {
    const svg = chart(
      [
        { at: new Date(min(0)).toISOString(), depth: 0, dlqInflow: 0 },
        { at: new Date(min(30)).toISOString(), depth: 10, dlqInflow: 2 },
      ],
      60,
    ).text;
    expect(svg).to.include('<svg').and.include('depth (max 10)').and.include('parked per 60 s (max 2)').and.include('30 min ago');
    // Zero at the baseline, the maximum at the top.
    expect(svg).to.match(/id="depth"[^>]*points="30\.0,130\.0 690\.0,30\.0"/);
    expect(chart([], 60).text).to.include('no samples');
  });
});
