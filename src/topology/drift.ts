import type { BindingInfo, ExchangeInfo, PermissionInfo, PolicyInfo, QueueInfo, TopicPermissionInfo } from './management';
import { same } from './canonicalJson';
import { quorumGroupSize, type Definitions } from './definitions';

/**
 * How the live broker differs from the definitions file, one line per
 * difference, so that `warren topology check` can show every problem at
 * once (a start-up check only needs the first). `missing`: declared in the
 * definitions, absent from the broker; `differs`: present with other
 * settings; `extra`: on the broker, not in the definitions.
 */
export type DriftKind = 'missing' | 'differs' | 'extra';

export interface Drift {
  kind: DriftKind;
  text: string;
}

const MARK: Record<DriftKind, string> = { missing: '-', differs: '~', extra: '+' };
const ORDER: DriftKind[] = ['missing', 'differs', 'extra'];

export const missing = (text: string): Drift => ({ kind: 'missing', text });
export const differs = (text: string): Drift => ({ kind: 'differs', text });
export const extra = (text: string): Drift => ({ kind: 'extra', text });

const show = (v: unknown) => (v === undefined ? '(unset)' : JSON.stringify(v));

/** Missing things first: they are the likeliest cause of the rest. */
export function sortDrift(drift: Drift[]): Drift[] {
  return ORDER.flatMap((kind) => drift.filter((d) => d.kind === kind));
}

/** A diff-style listing: `-` missing, `~` differs, `+` not in the definitions. */
export function formatDrift(drift: Drift[]): string {
  return sortDrift(drift)
    .map((d) => `${MARK[d.kind]} ${d.text}`)
    .join('\n');
}

type ExchangeDef = Definitions['exchanges'][number];
type QueueDef = Definitions['queues'][number];
type BindingDef = Definitions['bindings'][number];
type PermissionDef = Definitions['permissions'][number];
type TopicPermissionDef = Definitions['topic_permissions'][number];

/** Type, flags and arguments of a declared exchange. */
export function exchangeDrift(def: ExchangeDef, info: ExchangeInfo): Drift[] {
  const out: Drift[] = [];
  if (info.type !== def.type) out.push(differs(`exchange ${def.name} is ${info.type}, definitions say ${def.type}`));
  for (const key of ['durable', 'auto_delete', 'internal'] as const) {
    if (info[key] !== def[key]) out.push(differs(`exchange ${def.name} has ${key}=${show(info[key])}, definitions say ${show(def[key])}`));
  }
  if (!same(info.arguments ?? {}, def.arguments))
    out.push(differs(`exchange ${def.name} has arguments ${show(info.arguments ?? {})}, definitions say ${show(def.arguments)}`));
  return out;
}

/** Durability flags of a declared queue (its type and arguments are checked with its policy). */
export function queueFlagDrift(def: QueueDef, info: QueueInfo): Drift[] {
  const out: Drift[] = [];
  for (const key of ['durable', 'auto_delete'] as const) {
    if (info[key] !== def[key]) out.push(differs(`queue ${def.name} has ${key}=${show(info[key])}, definitions say ${show(def[key])}`));
  }
  return out;
}

function bindingText(b: Pick<BindingDef, 'source' | 'destination' | 'destination_type' | 'routing_key'>): string {
  const dest = b.destination_type === 'exchange' ? `exchange ${b.destination}` : b.destination;
  return `binding ${b.source} -> ${dest} (key ${JSON.stringify(b.routing_key)})`;
}

const sameBinding = (live: BindingInfo, def: BindingDef) =>
  live.source === def.source &&
  live.destination === def.destination &&
  live.destination_type === def.destination_type &&
  live.routing_key === def.routing_key &&
  same(live.arguments ?? {}, def.arguments);

/** How `bindingDrift` names a destination: a queue and an exchange may share a name (the delay steps do). */
export const destinationKey = (type: 'queue' | 'exchange', name: string) => `${type} ${name}`;

/**
 * Bindings into the given destinations (`destinationKey`). With `extras`, a binding the
 * definitions do not declare is drift too (the default exchange's implicit
 * binding excepted): it routes messages where nobody expects them.
 */
export function bindingDrift(defs: Definitions, live: BindingInfo[], destinations: Set<string>, extras: boolean): Drift[] {
  const out: Drift[] = [];
  for (const b of defs.bindings) {
    if (!destinations.has(destinationKey(b.destination_type, b.destination))) continue;
    if (!live.some((x) => sameBinding(x, b))) out.push(missing(`${bindingText(b)} is missing`));
  }
  if (extras) {
    for (const x of live) {
      if (x.source === '' || !destinations.has(destinationKey(x.destination_type, x.destination))) continue;
      if (!defs.bindings.some((b) => sameBinding(x, b))) out.push(extra(`${bindingText(x)} is not in the definitions`));
    }
  }
  return out;
}

/** A user's permissions on the vhost, regex by regex. */
export function permissionDrift(def: PermissionDef, live: PermissionInfo | undefined): Drift[] {
  if (!live) return [missing(`permissions of ${def.user} on vhost ${def.vhost} are missing`)];
  const out: Drift[] = [];
  for (const key of ['configure', 'write', 'read'] as const) {
    if (live[key] !== def[key]) out.push(differs(`permissions of ${def.user}: ${key} is ${show(live[key])}, definitions say ${show(def[key])}`));
  }
  return out;
}

/**
 * One user's topic permissions (the routing keys it may use) against the
 * broker's, per exchange. One the definitions do not have is drift too: it
 * may widen what the user's own permissions let through.
 */
export function topicPermissionDrift(user: string, defs: TopicPermissionDef[], live: TopicPermissionInfo[]): Drift[] {
  const out: Drift[] = [];
  for (const def of defs) {
    const got = live.find((l) => l.exchange === def.exchange);
    if (!got) {
      out.push(missing(`topic permissions of ${user} on exchange ${def.exchange} are missing`));
      continue;
    }
    for (const key of ['write', 'read'] as const) {
      if (got[key] !== def[key])
        out.push(differs(`topic permissions of ${user} on exchange ${def.exchange}: ${key} is ${show(got[key])}, definitions say ${show(def[key])}`));
    }
  }
  for (const l of live)
    if (!defs.some((d) => d.exchange === l.exchange)) out.push(extra(`topic permissions of ${user} on exchange ${l.exchange} are not in the definitions`));
  return out;
}

/**
 * The policies themselves. A policy that is not in the definitions is drift
 * even when it loses to ours on priority today: the effective-policy check
 * names the queues it already changes.
 */
export function policyDrift(defs: Definitions, live: PolicyInfo[]): Drift[] {
  const out: Drift[] = [];
  for (const p of defs.policies) {
    const info = live.find((x) => x.name === p.name);
    if (!info) {
      out.push(missing(`policy ${p.name} is missing`));
      continue;
    }
    for (const key of ['pattern', 'apply-to', 'priority', 'definition'] as const) {
      if (!same(info[key], p[key])) out.push(differs(`policy ${p.name} has ${key} ${show(info[key])}, definitions say ${show(p[key])}`));
    }
  }
  for (const info of live) {
    if (!defs.policies.some((p) => p.name === info.name)) {
      out.push(extra(`policy ${info.name} (pattern ${show(info.pattern)}, priority ${info.priority}, ${show(info.definition)}) is not in the definitions`));
    }
  }
  return out;
}

/**
 * A quorum queue's members against the cluster (`clusterNodes`: every node
 * the cluster knows, up or down). It should have one member per node, three
 * at most, so that a node loss leaves it a majority: all on one node of a
 * multi-node cluster, it stops with that node; with fewer members than the
 * cluster asks for (a queue declared before nodes joined, or a member lost
 * with a node's data), a loss may take its majority. A member on a node the
 * cluster no longer knows never comes back.
 */
export function memberDrift(info: QueueInfo, clusterNodes: readonly string[]): Drift[] {
  if (info.type !== 'quorum' || !info.members) return [];
  const members = [...new Set(info.members)];
  const wanted = quorumGroupSize(clusterNodes.length);
  const grow = '(rabbitmq-queues grow <node> all adds the missing members)';
  const out: Drift[] = [];
  if (clusterNodes.length > 1 && members.length === 1) {
    out.push(differs(`queue ${info.name} has its only member on ${members[0]}, in a cluster of ${clusterNodes.length} nodes: it stops with that node ${grow}`));
  } else if (members.length < wanted) {
    out.push(
      differs(
        `queue ${info.name} has ${members.length} member(s) (${members.join(', ')}); a cluster of ${clusterNodes.length} nodes asks for ${wanted} ${grow}`,
      ),
    );
  }
  for (const m of members) {
    if (!clusterNodes.includes(m))
      out.push(differs(`queue ${info.name} has a member on ${m}, which is not a node of the cluster (rabbitmq-queues shrink ${m})`));
  }
  return out;
}
