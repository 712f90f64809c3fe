import type amqp from 'amqplib';
import { vhostOf } from '../config';
import { connectOnce } from '../broker/connection';
import {
  bindingDrift,
  destinationKey,
  differs,
  exchangeDrift,
  memberDrift,
  missing,
  permissionDrift,
  policyDrift,
  queueFlagDrift,
  sortDrift,
  topicPermissionDrift,
  type Drift,
} from './drift';
import { ManagementClient, withoutPassword } from './management';
import {
  grantablePermissions,
  grantableTopicPermissions,
  policyProblems,
  readQueue,
  retargetDefinitions,
  shapeProblems,
  TopologyError,
  type Definitions,
  type TopologyNeeds,
} from './definitions';

/**
 * Holding the live broker against the definitions file: the start-up check
 * of every service (checkTopology) and `warren topology check` (findDrift,
 * with `full`). The comparisons themselves are pure, in drift.ts.
 */

export interface CheckTopologyOptions extends TopologyNeeds {
  managementUrl: string;
  /** When given, also checks passively over AMQP with the service's own credentials. */
  amqpUrl?: string;
  vhost: string;
  defs: Definitions;
  /** How long to wait for a queue's stats after a broker restart. */
  statsWaitMs?: number;
  /**
   * `warren topology check`: also the users' permissions, the policies
   * themselves, exchange and queue flags, and bindings or policies on the
   * broker that the definitions do not have.
   */
  full?: boolean;
}

/** Resolves when everything listed is there as the definitions need it; else throws one line. */
export async function checkTopology(opts: CheckTopologyOptions): Promise<void> {
  const drift = await findDrift(opts);
  if (drift.length > 0)
    throw new TopologyError(
      drift.map((d) => d.text),
      `topology check (vhost ${opts.vhost})`,
    );
}

/**
 * Every difference between the broker and the definitions for what is
 * listed, missing things first. Throws a plain Error (not drift) when the
 * broker cannot answer yet, so that a start-up gate waits instead of stopping.
 */
export async function findDrift(opts: CheckTopologyOptions): Promise<Drift[]> {
  const api = new ManagementClient(opts.managementUrl);
  const { vhost } = opts;
  const defs = retargetDefinitions(opts.defs, vhost);
  if (opts.amqpUrl && vhostOf(opts.amqpUrl) !== vhost) return [differs(`the AMQP URL names vhost ${vhostOf(opts.amqpUrl)}, not ${vhost}`)];
  if (!(await api.vhostExists(vhost))) return [missing(`vhost ${vhost} does not exist (run warren topology apply)`)];

  const drift: Drift[] = [];
  const problem = (text: string) => drift.push(differs(text));
  for (const name of opts.exchanges) {
    const info = await api.getExchange(vhost, name);
    const def = defs.exchanges.find((e) => e.name === name);
    if (!info) drift.push(missing(`exchange ${name} is missing`));
    else if (def && opts.full) drift.push(...exchangeDrift(def, info));
    else if (def && info.type !== def.type) problem(`exchange ${name} is ${info.type}, definitions say ${def.type}`);
  }
  const present: string[] = [];
  // Membership is the full check's: a service must start while a node is down or a queue is short of members.
  const clusterNodes = opts.full ? (await api.listNodes()).map((n) => n.name) : [];
  for (const name of opts.queues) {
    const info = await readQueue(api, vhost, name, opts.statsWaitMs ?? 10_000);
    if (!info) {
      drift.push(missing(`queue ${name} is missing`));
      continue;
    }
    present.push(name);
    shapeProblems(info, defs).forEach(problem);
    const def = defs.queues.find((q) => q.name === name);
    if (def && opts.full) drift.push(...queueFlagDrift(def, info), ...memberDrift(info, clusterNodes));
    // Missing stats say nothing about the topology; a plain Error lets a start-up gate retry.
    if (info.effective_policy_definition === undefined) throw new Error(`queue ${name}: effective policy not visible yet (no queue stats)`);
    policyProblems(name, info, defs).forEach(problem);
  }
  // Bindings into every queue and exchange that is there; a missing one is already named.
  const live = opts.full ? await api.listBindings(vhost) : (await Promise.all(present.map((q) => api.queueBindings(vhost, q)))).flat();
  drift.push(
    ...bindingDrift(
      defs,
      live,
      new Set([...present.map((q) => destinationKey('queue', q)), ...(opts.full ? opts.exchanges.map((e) => destinationKey('exchange', e)) : [])]),
      opts.full ?? false,
    ),
  );
  if (opts.full) {
    drift.push(...policyDrift(defs, await api.listPolicies(vhost)));
    for (const u of defs.users) if (!(await api.userExists(u.name))) drift.push(missing(`user ${u.name} does not exist`));
    for (const p of await grantablePermissions(api, defs)) drift.push(...permissionDrift(p, await api.getPermissions(vhost, p.user)));
    const topic = await grantableTopicPermissions(api, defs);
    for (const user of new Set([...defs.users.map((u) => u.name), ...topic.map((t) => t.user)])) {
      if (!(await api.userExists(user))) continue; // named above
      drift.push(
        ...topicPermissionDrift(
          user,
          topic.filter((t) => t.user === user),
          await api.listTopicPermissions(vhost, user),
        ),
      );
    }
  }
  if (opts.amqpUrl) (await amqpProblems(opts.amqpUrl, opts)).forEach(problem);
  return sortDrift(drift);
}

/** What the service's own credentials see: a passive declare of each name. */
async function amqpProblems(url: string, needs: TopologyNeeds): Promise<string[]> {
  let conn: amqp.ChannelModel;
  try {
    conn = await connectOnce(url, 'topology check', 'inspect');
  } catch (err) {
    const why = `cannot connect to ${withoutPassword(url)}: ${(err as Error).message}`;
    // Refused credentials or vhost access are wrong topology; anything else is an outage to wait out.
    if (/ACCESS.REFUSED|NOT.ALLOWED|\b(403|530)\b/.test(why)) return [why];
    throw new Error(why);
  }
  conn.on('error', () => undefined); // a failed passive declare closes only its channel; close() reports the rest
  const problems: string[] = [];
  const items = [...needs.exchanges.map((n) => ['exchange', n] as const), ...needs.queues.map((n) => ['queue', n] as const)];
  try {
    for (const [kind, name] of items) {
      // Each failing passive declare closes its channel, so each gets its own.
      const ch = await conn.createChannel();
      ch.on('error', () => undefined);
      try {
        if (kind === 'exchange') await ch.checkExchange(name);
        else await ch.checkQueue(name);
        await ch.close();
      } catch (err) {
        problems.push(`${kind} ${name} not usable over AMQP: ${(err as Error).message}`);
      }
    }
  } finally {
    await conn.close().catch(() => undefined);
  }
  return problems;
}
