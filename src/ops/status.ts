import fs from 'node:fs';
import { vhostOf, type Config } from '../config';
import { ManagementClient, type QueueInfo } from '../topology/management';
import { dlqOf, loadDefinitions, queueRole, retargetDefinitions, workQueues, type QueueRole } from '../topology/definitions';
import { openDatabase, sqliteFile } from '../db/knex';
import { countBacklog } from '../outbox/store';
import { formatCount, formatRate, renderTable } from './table';

/**
 * `warren status`: one look at the running system. Queue figures come from
 * the management API (they lag by its stats interval, 5 s by default); the
 * outbox backlog from the API's own database, read-only.
 */

export interface QueueStatus {
  name: string;
  role: QueueRole;
  type: string;
  messages: number | null;
  ready: number | null;
  unacked: number | null;
  consumers: number | null;
  /** Messages per second into the queue, out of it (consumers and basic.get), and acked. */
  publishRate: number | null;
  deliverRate: number | null;
  ackRate: number | null;
  policy: string | null;
  /** A quorum queue's leader, its members and the members that are up (Erlang node names); null for other queues. */
  leader: string | null;
  members: string[] | null;
  online: string[] | null;
}

export interface DlqStatus {
  queue: string;
  dlq: string;
  exists: boolean;
  /** Null until the broker has reported the queue's figures. */
  parked: number | null;
}

export type OutboxStatus = { backlog: number; maxBacklog: number } | { error: string };

/** The API's own /readyz, as this host reaches it: what it decides readiness on, and what it only reports. */
export type ApiReadiness =
  | {
      url: string;
      status: string;
      checks: { name: string; ok: boolean; required?: boolean; detail?: string; instances?: { url: string; setAside: boolean }[] }[];
    }
  | { url: string; error: string };

export interface StatusReport {
  vhost: string;
  at: string;
  queues: QueueStatus[];
  dlqs: DlqStatus[];
  outbox: OutboxStatus;
  /** The API's readiness, when asked (`collectStatus` asks the configured http.host and http.port). */
  api?: ApiReadiness;
  /** What an operator should look at, in words. */
  attention: string[];
}

const ROLE_ORDER: QueueRole[] = ['work', 'dlq', 'delay', 'live', 'other'];

export function queueStatus(info: QueueInfo, work: string[]): QueueStatus {
  const stats = info.message_stats;
  return {
    name: info.name,
    role: queueRole(info.name, work),
    type: info.type,
    messages: info.messages ?? null,
    ready: info.messages_ready ?? null,
    unacked: info.messages_unacknowledged ?? null,
    consumers: info.consumers ?? null,
    publishRate: stats?.publish_details?.rate ?? (info.messages === undefined ? null : 0),
    deliverRate: stats?.deliver_get_details?.rate ?? (info.messages === undefined ? null : 0),
    ackRate: stats?.ack_details?.rate ?? (info.messages === undefined ? null : 0),
    policy: info.policy ?? null,
    leader: info.leader ?? null,
    members: info.members ?? null,
    online: info.online ?? null,
  };
}

/** Members that are not up: a majority of them down stops the queue. */
function downMembers(q: QueueStatus): string[] {
  return q.members && q.online ? q.members.filter((m) => !q.online!.includes(m)) : [];
}

/** The API database's unsent outbox rows; a missing SQLite file is reported, never created. */
async function outboxStatus(config: Config): Promise<OutboxStatus> {
  if (config.database.client === 'sqlite' && !fs.existsSync(sqliteFile(config, 'api'))) {
    return { error: `no api database at ${sqliteFile(config, 'api')} (run warren status where the API runs, or set database.*)` };
  }
  const db = openDatabase(config, 'api', { statementTimeoutMs: 5000 });
  try {
    return { backlog: await countBacklog(db), maxBacklog: config.outbox.maxBacklog };
  } catch (err) {
    return { error: `cannot read the outbox: ${(err as Error).message}` };
  } finally {
    await db.destroy();
  }
}

/** GET /readyz of the API at http.host:http.port (a wildcard host is asked on loopback). */
async function apiReadiness(config: Config): Promise<ApiReadiness> {
  const host = config.http.host === '0.0.0.0' || config.http.host === '::' ? '127.0.0.1' : config.http.host;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${config.http.port}/readyz`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    const body = (await res.json()) as { status?: unknown; checks?: unknown };
    if (!Array.isArray(body.checks)) return { url, error: `answered ${res.status} without checks` };
    return { url, status: String(body.status), checks: body.checks as Extract<ApiReadiness, { checks: unknown }>['checks'] };
  } catch (err) {
    return { url, error: (err as Error).message };
  }
}

/** The timeline service's instances as the API's client sees them (its /readyz `timeline` check), when the API answered with them. */
export function timelineInstances(api: ApiReadiness | undefined): { url: string; setAside: boolean }[] | undefined {
  if (!api || 'error' in api) return undefined;
  return api.checks.find((c) => c.name === 'timeline')?.instances;
}

export function attentionFor(report: Omit<StatusReport, 'attention'>): string[] {
  const out: string[] = [];
  if (report.api && 'error' in report.api) out.push(`api: ${report.api.url} did not answer (${report.api.error})`);
  else if (report.api) {
    for (const c of report.api.checks.filter((x) => !x.ok)) {
      const effect = c.required ? 'the API is not ready' : 'reported; the API still takes writes';
      out.push(`api: ${c.name} failing${c.detail ? ` (${c.detail})` : ''}: ${effect}`);
    }
  }
  for (const i of timelineInstances(report.api)?.filter((x) => x.setAside) ?? []) {
    out.push(`timeline instance ${i.url} set aside by the API (it kept failing): check warren worker timeline there`);
  }
  for (const q of report.queues) {
    if (q.role === 'work' && q.consumers === 0) out.push(`${q.name} has no consumers: start warren worker for it`);
    const down = downMembers(q);
    if (down.length > 0 && q.members) {
      const up = q.members.length - down.length;
      const effect = up > q.members.length / 2 ? 'it still has a majority' : 'no majority: it refuses publishes and deliveries until they are back';
      out.push(`${q.name}: member(s) ${down.join(', ')} down, ${up} of ${q.members.length} up; ${effect}`);
    }
  }
  for (const d of report.dlqs) {
    if (!d.exists) out.push(`${d.dlq} is missing: run warren topology check`);
    else if (d.parked !== null && d.parked > 0) out.push(`${d.dlq} holds ${d.parked} parked message(s): warren dlq list ${d.queue}`);
  }
  if ('error' in report.outbox) out.push(`outbox: ${report.outbox.error}`);
  else if (report.outbox.backlog > report.outbox.maxBacklog) out.push(`outbox backlog ${report.outbox.backlog} is over outbox.maxBacklog ${report.outbox.maxBacklog}: the API answers writes with 503`);
  return out;
}

export async function collectStatus(config: Config): Promise<StatusReport> {
  const vhost = vhostOf(config.amqp.url);
  const defs = retargetDefinitions(loadDefinitions(config.amqp.definitionsFile), vhost);
  const work = workQueues(defs);
  const api = new ManagementClient(config.amqp.managementUrl);
  const [infos, outbox, apiReady] = await Promise.all([api.listQueues(vhost), outboxStatus(config), apiReadiness(config)]);
  // In the definitions' order within a role: delay steps shortest first, as declared.
  const declared = (name: string) => {
    const i = defs.queues.findIndex((q) => q.name === name);
    return i < 0 ? defs.queues.length : i;
  };
  const queues = infos
    .map((q) => queueStatus(q, work))
    .sort((a, b) => ROLE_ORDER.indexOf(a.role) - ROLE_ORDER.indexOf(b.role) || declared(a.name) - declared(b.name) || a.name.localeCompare(b.name));
  const dlqs = work.map((queue): DlqStatus => {
    const q = queues.find((x) => x.name === dlqOf(queue));
    return { queue, dlq: dlqOf(queue), exists: q !== undefined, parked: q?.messages ?? null };
  });
  const report = { vhost, at: new Date().toISOString(), queues, dlqs, outbox, api: apiReady };
  return { ...report, attention: attentionFor(report) };
}

const num = (n: number | null) => (n === null ? '-' : formatCount(n));
const rate = (n: number | null) => (n === null ? '-' : formatRate(n));

export function renderStatus(r: StatusReport): string {
  const queueTable = renderTable(
    [
      { title: 'QUEUE' },
      { title: 'ROLE' },
      { title: 'MESSAGES', align: 'right' },
      { title: 'READY', align: 'right' },
      { title: 'UNACKED', align: 'right' },
      { title: 'CONSUMERS', align: 'right' },
      { title: 'PUBLISH/S', align: 'right' },
      { title: 'DELIVER/S', align: 'right' },
      { title: 'ACK/S', align: 'right' },
    ],
    r.queues.map((q) => [q.name, q.role, num(q.messages), num(q.ready), num(q.unacked), num(q.consumers), rate(q.publishRate), rate(q.deliverRate), rate(q.ackRate)]),
  );
  const dlqTable = renderTable(
    [{ title: 'DEAD-LETTER QUEUE' }, { title: 'PARKED', align: 'right' }, { title: 'OF WORK QUEUE' }],
    r.dlqs.map((d) => [d.dlq, !d.exists ? 'missing' : d.parked === null ? '-' : formatCount(d.parked), d.queue]),
  );
  // A queue's leader and members, once they span several nodes (a single broker has one of each).
  const replicated = r.queues.filter((q) => q.members !== null);
  const nodes = new Set(replicated.flatMap((q) => q.members ?? []));
  const memberTable =
    nodes.size > 1
      ? [
          '',
          renderTable(
            [{ title: 'QUEUE' }, { title: 'LEADER' }, { title: 'MEMBERS' }, { title: 'DOWN' }],
            replicated.map((q) => [q.name, q.leader ?? '-', (q.members ?? []).join(' '), downMembers(q).join(' ') || '-']),
          ),
        ]
      : [];
  const outbox = 'error' in r.outbox ? `outbox: ${r.outbox.error}` : `outbox: ${formatCount(r.outbox.backlog)} event(s) waiting to be relayed (writes answer 503 above ${formatCount(r.outbox.maxBacklog)})`;
  const apiLine = !r.api ? [] : 'error' in r.api ? [`api: ${r.api.url} did not answer`] : [`api: ${r.api.status === 'unavailable' ? 'not ready' : 'ready'} (${r.api.status}) at ${r.api.url}`];
  const instances = timelineInstances(r.api);
  const timelineTable = instances
    ? ['', renderTable([{ title: 'TIMELINE INSTANCE (AS THE API SEES IT)' }, { title: 'STATE' }], instances.map((i) => [i.url, i.setAside ? 'set aside' : 'in service']))]
    : [];
  const attention = r.attention.length ? ['', 'needs attention:', ...r.attention.map((a) => `  ! ${a}`)] : ['', 'nothing needs attention'];
  return [`vhost ${r.vhost} at ${r.at} (queue figures lag by up to 5 s)`, '', queueTable, ...memberTable, '', dlqTable, '', outbox, ...apiLine, ...timelineTable, ...attention].join(
    '\n',
  );
}
