import { expect } from 'chai';
import { loadConfig } from '../../../src/services';
import { dlqPurge, parkedTable, replaySummary } from '../../../src/console/dlqCommands';
import { OperatorError } from '../../../src/ops/operatorError';
import { bar, ProgressLine } from '../../../src/ops/progress';
import { attentionFor, queueStatus, renderStatus, type StatusReport } from '../../../src/ops/status';
import { formatAge, formatRate, renderTable } from '../../../src/ops/table';

/** What operator commands print, without a broker. */
describe('operator output', function () {
  it('pads table columns to their widest cell, right-aligns numbers and cuts long reasons', function () {
    const text = renderTable(
      [{ title: 'QUEUE' }, { title: 'MESSAGES', align: 'right' }, { title: 'REASON', maxWidth: 10 }],
      [
        ['analytics.tweets', '1,204', 'TransientError: database busy'],
        ['x.dlq', '3', 'short'],
      ],
    );
    expect(text.split('\n')).to.deep.equal([
      'QUEUE             MESSAGES  REASON',
      'analytics.tweets     1,204  Transient…',
      'x.dlq                    3  short',
    ]);
  });

  it('shows ages and rates at a glance', function () {
    expect([formatAge(42_000), formatAge(17 * 60_000), formatAge(5 * 3_600_000), formatAge(3 * 86_400_000), formatAge(-1)]).to.deep.equal(['42s', '17m', '5h', '3d', '-']);
    expect([formatRate(undefined), formatRate(0), formatRate(0.44), formatRate(12.6), formatRate(1204.2)]).to.deep.equal(['-', '0', '0.4', '13', '1,204']);
  });

  it('lists parked messages with kind, attempts, age and reason', function () {
    const now = Date.parse('2026-01-01T12:00:00Z');
    const table = parkedTable(
      [
        { messageId: 'm-1', type: 'tweet.created', reason: 'TransientError: database busy', kind: 'exhausted', attempts: 5, firstFailure: null, lastFailure: '2026-01-01T11:50:00Z', originalQueue: 'analytics.tweets' },
        { messageId: null, type: null, reason: 'delivery_limit', kind: 'crash-loop', attempts: null, firstFailure: null, lastFailure: null, originalQueue: null },
      ],
      now,
    );
    expect(table.split('\n')).to.deep.equal([
      'MESSAGE ID  TYPE           KIND        ATTEMPTS  AGE  REASON',
      'm-1         tweet.created  exhausted          5  10m  TransientError: database busy',
      '(none)      (none)         crash-loop         -    -  delivery_limit',
    ]);
  });

  it('summarises a replay, saying when it was interrupted', function () {
    expect(replaySummary('analytics.tweets', { replayed: 7, skipped: 2, remaining: 13, interrupted: true })).to.equal(
      'interrupted: replayed 7, skipped 2, remaining 13 in analytics.tweets.dlq',
    );
  });

  it('rewrites one progress line on a terminal and erases it at the end', function () {
    const written: string[] = [];
    let t = 0;
    const line = new ProgressLine({ isTTY: true, write: (s) => written.push(s) > 0 }, () => t);
    line.update('first'); // within the first interval: a quick command shows nothing
    t = 150;
    line.update(`replaying ${bar(5, 10, 10)} 5/10`);
    t = 200;
    line.update('too soon');
    line.end();
    expect(written).to.deep.equal(['\r\x1b[2Kreplaying [#####.....] 5/10', '\r\x1b[2K']);
  });

  it('writes plain lines every 10 s when stderr is not a terminal', function () {
    const written: string[] = [];
    let t = 0;
    const line = new ProgressLine({ isTTY: false, write: (s) => written.push(s) > 0 }, () => t);
    t = 5_000;
    line.update('a');
    t = 10_001;
    line.update('b');
    line.end();
    expect(written).to.deep.equal(['b\n']);
  });

  it('refuses to purge without --yes when stdin is not a terminal, before touching the broker', async function () {
    const config = loadConfig({ NODE_ENV: 'test', WARREN_AMQP_URL: 'amqp://guest:guest@127.0.0.1:1/none' });
    let asked = false;
    const err = await dlqPurge(config, 'analytics.tweets', {}, { isTTY: false, ask: async () => ((asked = true), '') }).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(OperatorError);
    expect((err as OperatorError).message).to.equal('warren dlq purge deletes every message parked in analytics.tweets.dlq; not on a terminal, so run it with --yes');
    expect((err as OperatorError).exitCode).to.equal(2);
    expect(asked).to.equal(false);
  });

  it('renders status with what needs attention: a work queue without consumers, parked messages, an outbox over its limit', function () {
    const work = ['analytics.tweets'];
    const queues = [
      queueStatus({ name: 'analytics.tweets', vhost: 'warren', type: 'quorum', durable: true, auto_delete: false, arguments: {}, messages: 12, messages_ready: 10, messages_unacknowledged: 2, consumers: 0, message_stats: { publish_details: { rate: 3.25 }, deliver_get_details: { rate: 0 } } }, work),
      queueStatus({ name: 'analytics.tweets.dlq', vhost: 'warren', type: 'quorum', durable: true, auto_delete: false, arguments: {}, messages: 3, messages_ready: 3, messages_unacknowledged: 0, consumers: 0 }, work),
      queueStatus({ name: 'warren.delay.5s', vhost: 'warren', type: 'quorum', durable: true, auto_delete: false, arguments: {} }, work),
    ];
    expect(queues.map((q) => q.role)).to.deep.equal(['work', 'dlq', 'delay']);
    const base: Omit<StatusReport, 'attention'> = {
      vhost: 'warren',
      at: '2026-01-01T12:00:00.000Z',
      queues,
      dlqs: [
        { queue: 'analytics.tweets', dlq: 'analytics.tweets.dlq', exists: true, parked: 3 },
        // Figures not reported yet are not a problem; a missing DLQ is.
        { queue: 'notifications.user-events', dlq: 'notifications.user-events.dlq', exists: true, parked: null },
        { queue: 'other.queue', dlq: 'other.queue.dlq', exists: false, parked: null },
      ],
      outbox: { backlog: 150, maxBacklog: 100 },
      api: {
        url: 'http://127.0.0.1:3000/readyz',
        status: 'degraded',
        checks: [
          { name: 'database', ok: true, required: true },
          { name: 'broker', ok: false, required: false, detail: 'not connected' },
          {
            name: 'timeline',
            ok: true,
            required: false,
            detail: '2 instance(s), set aside: http://10.0.0.7:3100',
            instances: [
              { url: 'http://10.0.0.7:3100', setAside: true },
              { url: 'http://10.0.0.8:3100', setAside: false },
            ],
          },
        ],
      },
    };
    const report = { ...base, attention: attentionFor(base) };
    expect(report.attention).to.deep.equal([
      'api: broker failing (not connected): reported; the API still takes writes',
      'timeline instance http://10.0.0.7:3100 set aside by the API (it kept failing): check warren worker timeline there',
      'analytics.tweets has no consumers: start warren worker for it',
      'analytics.tweets.dlq holds 3 parked message(s): warren dlq list analytics.tweets',
      'other.queue.dlq is missing: run warren topology check',
      'outbox backlog 150 is over outbox.maxBacklog 100: the API answers writes with 503',
    ]);
    const lines = renderStatus(report).split('\n');
    expect(lines).to.include('analytics.tweets      work         12     10        2          0        3.3          0      0');
    // A queue whose stats have not arrived yet shows dashes, not zeros.
    expect(lines).to.include('warren.delay.5s       delay         -      -        -          -          -          -      -');
    expect(lines).to.include('outbox: 150 event(s) waiting to be relayed (writes answer 503 above 100)');
    expect(lines).to.include('api: ready (degraded) at http://127.0.0.1:3000/readyz');
    const instances = lines.indexOf(lines.find((l) => l.startsWith('TIMELINE INSTANCE'))!);
    expect(lines.slice(instances + 1, instances + 3).map((l) => l.split(/\s+/).join(' '))).to.deep.equal([
      'http://10.0.0.7:3100 set aside',
      'http://10.0.0.8:3100 in service',
    ]);
  });
});
