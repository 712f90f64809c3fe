import fs from 'node:fs';
import { z } from 'zod';
import type { Logger } from '../log';
import { same } from './canonicalJson';
import { LIVE_EXCHANGE } from '../broker/live';
import { ManagementClient, type PolicyDefinition, type PolicyValue, type QueueInfo } from './management';

/**
 * Topology is data: `rabbitmq/definitions.json` names every exchange, queue,
 * binding and policy. `applyTopology` is the only code that declares;
 * services run `checkTopology` at start-up and stop with one line when what
 * they use is missing or would silently lose messages.
 */

export const RETURN_EXCHANGE = 'warren.return';
export const PARK_EXCHANGE = 'warren.dlx';
export const DELAY_PREFIX = 'warren.delay.';

export function dlqOf(queue: string): string {
  return `${queue}.dlq`;
}

export class TopologyError extends Error {
  constructor(
    readonly problems: string[],
    prefix = 'topology',
  ) {
    const shown = problems.slice(0, 3).join('; ');
    super(`${prefix}: ${shown}${problems.length > 3 ? `; and ${problems.length - 3} more` : ''}`.replace(/\s*\n\s*/g, ' '));
    this.name = 'TopologyError';
  }
}

const policyValue: z.ZodType<PolicyValue> = z.union([z.string(), z.number(), z.boolean(), z.array(z.string())]);
const args = z.record(z.string(), z.unknown()).default({});

const definitionsSchema = z
  .object({
    rabbit_version: z.string().optional(),
    vhosts: z.array(z.object({ name: z.string().min(1) })).length(1, 'must name exactly one vhost'),
    // Service users, without credentials: passwords come from configuration (`topology apply`).
    users: z
      .array(
        z
          .object({
            name: z.string().min(1),
            password_hash: z.literal('', { message: 'the definitions file never holds credentials' }).default(''),
            tags: z.array(z.enum(['monitoring'], { message: 'a service user may carry the monitoring tag at most' })).default([]),
          })
          .loose(),
      )
      .default([]),
    permissions: z.array(z.object({ user: z.string().min(1), vhost: z.string(), configure: z.string(), write: z.string(), read: z.string() })).default([]),
    /** Routing keys a user may publish with (write) and bind with (read), per topic exchange. */
    topic_permissions: z
      .array(
        z.object({
          user: z.string().min(1),
          vhost: z.string(),
          exchange: z.string().min(1),
          write: z.string().refine(isRegExp, 'not a valid regular expression'),
          read: z.string().refine(isRegExp, 'not a valid regular expression'),
        }),
      )
      .default([]),
    exchanges: z.array(
      z.object({
        name: z.string().min(1),
        vhost: z.string(),
        type: z.enum(['direct', 'fanout', 'topic', 'headers']),
        durable: z.boolean(),
        auto_delete: z.boolean(),
        internal: z.boolean().default(false),
        arguments: args,
      }),
    ),
    queues: z.array(z.object({ name: z.string().min(1), vhost: z.string(), durable: z.boolean(), auto_delete: z.boolean(), arguments: args })),
    bindings: z.array(
      z.object({
        source: z.string().min(1),
        vhost: z.string(),
        destination: z.string().min(1),
        destination_type: z.enum(['queue', 'exchange']),
        routing_key: z.string(),
        arguments: args,
      }),
    ),
    policies: z.array(
      z.object({
        vhost: z.string(),
        name: z.string().min(1),
        pattern: z.string().refine(isRegExp, 'not a valid regular expression'),
        'apply-to': z.enum(['queues', 'exchanges', 'all', 'classic_queues', 'quorum_queues', 'streams']).default('all'),
        priority: z.number().int().default(0),
        definition: z.record(z.string(), policyValue),
      }),
    ),
  })
  .superRefine((d, ctx) => {
    const vhost = d.vhosts[0]?.name;
    for (const key of ['permissions', 'topic_permissions', 'exchanges', 'queues', 'bindings', 'policies'] as const) {
      d[key].forEach((item, i) => {
        if (item.vhost !== vhost) ctx.addIssue({ code: 'custom', path: [key, i, 'vhost'], message: `is ${item.vhost}, the definitions' vhost is ${vhost}` });
      });
    }
    const exchanges = new Set(d.exchanges.map((e) => e.name));
    const queues = new Set(d.queues.map((q) => q.name));
    // RabbitMQ checks topic permissions on topic exchanges only: on any other type one would protect nothing, silently.
    d.topic_permissions.forEach((p, i) => {
      const type = d.exchanges.find((e) => e.name === p.exchange)?.type;
      if (type === undefined) ctx.addIssue({ code: 'custom', path: ['topic_permissions', i, 'exchange'], message: `exchange ${p.exchange} is not defined` });
      else if (type !== 'topic')
        ctx.addIssue({
          code: 'custom',
          path: ['topic_permissions', i, 'exchange'],
          message: `${p.exchange} is a ${type} exchange; RabbitMQ applies topic permissions to topic exchanges only`,
        });
      if (!d.permissions.some((q) => q.user === p.user))
        ctx.addIssue({ code: 'custom', path: ['topic_permissions', i, 'user'], message: `${p.user} has no permissions entry in the vhost` });
    });
    // Retries, parks and their return route are shared by every service: a service user who may use one
    // without a routing-key permission could put messages into, or bind a copy out of, another's queues.
    const shared = d.exchanges.filter((e) => e.name === RETURN_EXCHANGE || e.name === PARK_EXCHANGE || e.name.startsWith(DELAY_PREFIX));
    const serviceUsers = new Set(d.users.map((u) => u.name));
    d.permissions.forEach((p, i) => {
      if (!serviceUsers.has(p.user) || !isRegExp(p.write) || !isRegExp(p.read)) return;
      for (const e of shared) {
        const uses = new RegExp(p.write).test(e.name) || new RegExp(p.read).test(e.name);
        if (uses && !d.topic_permissions.some((t) => t.user === p.user && t.exchange === e.name)) {
          ctx.addIssue({
            code: 'custom',
            path: ['permissions', i],
            message: `${p.user} may use ${e.name} but has no topic permission on it naming the routing keys it may use`,
          });
        }
      }
    });
    d.bindings.forEach((b, i) => {
      if (!exchanges.has(b.source)) ctx.addIssue({ code: 'custom', path: ['bindings', i, 'source'], message: `exchange ${b.source} is not defined` });
      const known = b.destination_type === 'queue' ? queues : exchanges;
      if (!known.has(b.destination))
        ctx.addIssue({ code: 'custom', path: ['bindings', i, 'destination'], message: `${b.destination_type} ${b.destination} is not defined` });
    });
  });

export type Definitions = z.infer<typeof definitionsSchema>;
type PolicyDefs = Definitions['policies'][number];

function isRegExp(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

export function loadDefinitions(file: string): Definitions {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new TopologyError([(err as Error).message], `definitions ${file}`);
  }
  const parsed = definitionsSchema.safeParse(raw);
  if (!parsed.success) {
    throw new TopologyError(
      parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
      `definitions ${file}`,
    );
  }
  return parsed.data;
}

/** The same topology in another vhost (tests, or a deployment whose vhost is not `warren`). */
export function retargetDefinitions(defs: Definitions, vhost: string): Definitions {
  const to = <T extends { vhost: string }>(items: T[]): T[] => items.map((item) => ({ ...item, vhost }));
  return {
    ...defs,
    vhosts: [{ name: vhost }],
    permissions: to(defs.permissions),
    topic_permissions: to(defs.topic_permissions),
    exchanges: to(defs.exchanges),
    queues: to(defs.queues),
    bindings: to(defs.bindings),
    policies: to(defs.policies),
  };
}

/** The same topology with its service users renamed (tests run their own users beside a deployment's). */
export function renameUsers(defs: Definitions, rename: (user: string) => string): Definitions {
  const known = new Set(defs.users.map((u) => u.name));
  return {
    ...defs,
    users: defs.users.map((u) => ({ ...u, name: rename(u.name) })),
    permissions: defs.permissions.map((p) => (known.has(p.user) ? { ...p, user: rename(p.user) } : p)),
    topic_permissions: defs.topic_permissions.map((p) => (known.has(p.user) ? { ...p, user: rename(p.user) } : p)),
  };
}

/** The policy RabbitMQ applies to this queue: the highest-priority match. */
export function policyFor(queue: string, defs: Definitions): PolicyDefs | undefined {
  const type = String(defs.queues.find((q) => q.name === queue)?.arguments['x-queue-type'] ?? 'classic');
  const applies = (p: PolicyDefs) => ['queues', 'all', `${type}_queues`].includes(p['apply-to']) && new RegExp(p.pattern).test(queue);
  let best: PolicyDefs | undefined;
  for (const p of defs.policies) if (applies(p) && (!best || p.priority > best.priority)) best = p;
  return best;
}

export interface DelayStep {
  name: string;
  exchange: string;
  queue: string;
  ttlMs: number;
}

/** Backoff steps, shortest first: one exchange + queue per step, its TTL from the queue's policy. */
export function delaySteps(defs: Definitions): DelayStep[] {
  const steps = defs.exchanges
    .filter((e) => e.name.startsWith(DELAY_PREFIX))
    .map((e) => {
      const queue = defs.queues.find((q) => q.name === e.name);
      const ttl = queue && policyFor(queue.name, defs)?.definition['message-ttl'];
      if (typeof ttl !== 'number' || ttl <= 0)
        throw new TopologyError([`delay step ${e.name} needs a queue of the same name with a policy message-ttl`], 'definitions');
      return { name: e.name.slice(DELAY_PREFIX.length), exchange: e.name, queue: e.name, ttlMs: ttl };
    });
  return steps.sort((a, b) => a.ttlMs - b.ttlMs);
}

export interface TopologyNeeds {
  queues: string[];
  exchanges: string[];
}

/** Everything the definitions declare (`warren topology check`). */
export function allNames(defs: Definitions): TopologyNeeds {
  return { queues: defs.queues.map((q) => q.name), exchanges: defs.exchanges.map((e) => e.name) };
}

/** Work queues are the ones `warren.return` brings retries back to. */
export function workQueues(defs: Definitions): string[] {
  return defs.bindings.filter((b) => b.source === RETURN_EXCHANGE && b.destination_type === 'queue').map((b) => b.destination);
}

export function queuesNeededBy(workQueue: string, defs: Definitions): TopologyNeeds {
  if (!workQueues(defs).includes(workQueue)) throw new TopologyError([`${workQueue} is not a work queue of the definitions file`], 'definitions');
  const steps = delaySteps(defs);
  return {
    queues: [workQueue, dlqOf(workQueue), ...steps.map((s) => s.queue)],
    exchanges: [...steps.map((s) => s.exchange), RETURN_EXCHANGE, PARK_EXCHANGE],
  };
}

/**
 * The API publishes events to the exchanges that feed the work queues, and
 * binds its own live-notification queue to `notifications.live`.
 */
export function apiNeeds(defs: Definitions): TopologyNeeds {
  const work = new Set(workQueues(defs));
  const exchanges = defs.bindings.filter((b) => work.has(b.destination) && b.source !== RETURN_EXCHANGE).map((b) => b.source);
  return { queues: [], exchanges: [...new Set([...exchanges, LIVE_EXCHANGE])] };
}

/** What a queue is for; `live`: an API process's server-named live-notification queue. */
export type QueueRole = 'work' | 'dlq' | 'delay' | 'live' | 'other';

export function queueRole(name: string, work: readonly string[]): QueueRole {
  if (work.includes(name)) return 'work';
  if (name.endsWith('.dlq')) return 'dlq';
  if (name.startsWith(DELAY_PREFIX)) return 'delay';
  if (name.startsWith('amq.gen-')) return 'live';
  return 'other';
}

const show = (v: unknown) => (v === undefined ? '(unset)' : JSON.stringify(v));

/**
 * What is wrong with one queue's effective policy: first the DESIGN rules
 * (each says what would be lost), then any other value its definitions
 * policy requires and the broker does not apply.
 */
export function policyProblems(queue: string, info: QueueInfo, defs: Definitions): string[] {
  const eff: PolicyDefinition = info.effective_policy_definition ?? {};
  const wanted = policyFor(queue, defs);
  const req = wanted?.definition ?? {};
  const role = queueRole(queue, workQueues(defs));
  const where = `effective policy ${info.policy || '(none)'}`;
  const out: string[] = [];
  const reported = new Set<string>();
  const problem = (key: string, text: string) => {
    reported.add(key);
    out.push(`queue ${queue}: ${text}`);
  };
  const loses = role === 'delay' ? 'retries could be lost' : role === 'work' ? 'crash-looping messages could be lost' : 'dead-lettered messages could be lost';

  // Without a dead-letter-exchange nothing dead-letters; the definitions check below names it.
  if ('dead-letter-exchange' in eff) {
    const strategy = eff['dead-letter-strategy'];
    if (strategy !== 'at-least-once') {
      const lost = req['dead-letter-strategy'] === 'at-least-once' ? `${where} lost at-least-once` : where;
      problem('dead-letter-strategy', `dead-letter-strategy is ${strategy ?? 'at-most-once'} (${lost}); ${loses}`);
    } else if (eff.overflow !== 'reject-publish') {
      problem(
        'overflow',
        `overflow is ${eff.overflow ?? 'drop-head'}, not reject-publish (${where}); without it the broker silently dead-letters at-most-once, ${loses}`,
      );
    }
  } else if ('delivery-limit' in eff && role !== 'dlq') {
    problem(
      'dead-letter-exchange',
      `delivery-limit ${show(eff['delivery-limit'])} without a dead-letter-exchange (${where}); a crash-looping message would be dropped`,
    );
  }
  if (role === 'dlq') {
    if (!('max-length-bytes' in eff)) problem('max-length-bytes', `has no max-length-bytes (${where}); parked messages could fill the disk`);
    if (eff.overflow !== 'reject-publish')
      problem('overflow', `overflow is ${eff.overflow ?? 'drop-head'}, not reject-publish (${where}); a full DLQ would delete parked messages`);
    if ('delivery-limit' in eff) problem('delivery-limit', `a DLQ with delivery-limit (${where}) drops parked messages that are listed repeatedly`);
    if ('message-ttl' in eff) problem('message-ttl', `a DLQ with message-ttl (${where}) deletes parked messages`);
  }
  if ((role === 'dlq' || role === 'work') && 'expires' in eff) problem('expires', `expires is set (${where}); an idle queue would be deleted`);

  for (const [key, value] of Object.entries(req)) {
    if (reported.has(key) || same(eff[key], value)) continue;
    const required = `policy ${wanted!.name} of the definitions requires ${key}=${show(value)}`;
    problem(key, eff[key] === undefined ? `${where} lacks ${key}; ${required}` : `${where} has ${key}=${show(eff[key])}; ${required}`);
  }
  return out;
}

/** The argument a quorum queue's member count is declared with; it never changes for a queue once declared. */
export const GROUP_SIZE_ARGUMENT = 'x-quorum-initial-group-size';

/**
 * How many members a quorum queue gets on a cluster of `runningNodes`: one
 * per node, three at most (three survive the loss of any one; more members
 * only slow every write down). A single node is the one-member case.
 */
export function quorumGroupSize(runningNodes: number): number {
  return Math.max(1, Math.min(3, runningNodes));
}

/**
 * The arguments `topology apply` declares a queue with. A new quorum queue
 * on a cluster gets its member count for the cluster's size; on a single
 * node it gets none (one member either way, and the queue as before). A
 * queue that exists keeps the count it was declared with: the broker refuses
 * a re-declare with another value (inequivalent arg), and a queue's
 * membership grows with `rabbitmq-queues grow`, not by declaring.
 */
export function declaredArguments(def: Definitions['queues'][number], live: QueueInfo | undefined, runningNodes: number): Record<string, unknown> {
  if (def.arguments['x-queue-type'] !== 'quorum' || GROUP_SIZE_ARGUMENT in def.arguments) return def.arguments;
  if (live) {
    const declared = live.arguments?.[GROUP_SIZE_ARGUMENT];
    return declared === undefined ? def.arguments : { ...def.arguments, [GROUP_SIZE_ARGUMENT]: declared };
  }
  return runningNodes > 1 ? { ...def.arguments, [GROUP_SIZE_ARGUMENT]: quorumGroupSize(runningNodes) } : def.arguments;
}

/** The queue's static shape: type and arguments exactly as defined (tunables belong in policies; a quorum queue's member count is the cluster's). */
export function shapeProblems(info: QueueInfo, defs: Definitions): string[] {
  const def = defs.queues.find((q) => q.name === info.name);
  if (!def) return [];
  const out: string[] = [];
  const wantedType = String(def.arguments['x-queue-type'] ?? 'classic');
  if (info.type !== wantedType) out.push(`queue ${info.name}: is a ${info.type} queue, definitions say ${wantedType}`);
  for (const [key, value] of Object.entries(info.arguments ?? {})) {
    if (key === GROUP_SIZE_ARGUMENT && info.type === 'quorum' && !(key in def.arguments)) continue;
    if (!same(def.arguments[key], value))
      out.push(`queue ${info.name}: has argument ${key}=${show(value)} the definitions do not (tunables belong in policies)`);
  }
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A queue's stats (and with them its effective policy) appear a few seconds after it starts. */
export async function readQueue(api: ManagementClient, vhost: string, name: string, waitMs: number): Promise<QueueInfo | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const info = await api.getQueue(vhost, name);
    if (!info || info.effective_policy_definition !== undefined || Date.now() >= deadline) return info;
    await sleep(500);
  }
}

export interface ApplyTopologyOptions {
  managementUrl: string;
  vhost: string;
  defs: Definitions;
  log: Logger;
  /** How long to wait for every queue to show its effective policy. */
  timeoutMs?: number;
  /** Passwords of the definitions' service users, from configuration; a user without one is created unable to log in. */
  passwords?: Record<string, string>;
}

/**
 * Permissions of users the definitions declare, and of other users (the
 * development `guest`) only where they exist: a production broker has no
 * `guest`, and the broker refuses permissions for a user it does not know.
 */
export async function grantablePermissions(api: ManagementClient, defs: Definitions): Promise<Definitions['permissions']> {
  return grantable(api, defs, defs.permissions);
}

/** Topic permissions, on the same terms as grantablePermissions. */
export async function grantableTopicPermissions(api: ManagementClient, defs: Definitions): Promise<Definitions['topic_permissions']> {
  return grantable(api, defs, defs.topic_permissions);
}

async function grantable<T extends { user: string }>(api: ManagementClient, defs: Definitions, items: T[]): Promise<T[]> {
  const declared = new Set(defs.users.map((u) => u.name));
  const out: T[] = [];
  for (const p of items) if (declared.has(p.user) || (await api.userExists(p.user))) out.push(p);
  return out;
}

/**
 * Declares one exchange. One of another type (a deployment from before the
 * retry and park exchanges became topic exchanges) cannot be changed in
 * place: it is deleted and declared again, and the binding step that follows
 * restores its bindings. Meanwhile a mandatory retry or park comes back
 * unroutable and its original stays unacked, and the broker's at-least-once
 * dead-lettering keeps expired retries in their delay queue until the route
 * is back, so nothing is lost on the way.
 */
async function declareExchange(api: ManagementClient, vhost: string, e: Definitions['exchanges'][number], log: Logger): Promise<void> {
  const live = await api.getExchange(vhost, e.name);
  if (live && live.type !== e.type) {
    log.warn({ vhost, exchange: e.name, from: live.type, to: e.type }, 'topology apply: re-declaring an exchange whose type changed');
    await api.deleteExchange(vhost, e.name);
  }
  await api.putExchange(vhost, e.name, { type: e.type, durable: e.durable, auto_delete: e.auto_delete, internal: e.internal, arguments: e.arguments });
}

async function step(what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    throw new TopologyError([`${what}: ${(err as Error).message}`], 'topology apply');
  }
}

/**
 * Declares everything through the management API; idempotent. Policies go
 * in before queues so that no queue ever exists without its dead-letter
 * settings. Returns once every queue shows the policy it needs.
 */
export async function applyTopology(opts: ApplyTopologyOptions): Promise<void> {
  const api = new ManagementClient(opts.managementUrl);
  const { vhost } = opts;
  const defs = retargetDefinitions(opts.defs, vhost);
  await step(`vhost ${vhost}`, () => api.createVhost(vhost));
  for (const u of defs.users) {
    const password = opts.passwords?.[u.name];
    const tags = u.tags.join(',');
    if (password) await step(`user ${u.name}`, () => api.putUser(u.name, { password, tags }));
    else if (!(await api.userExists(u.name))) await step(`user ${u.name}`, () => api.putUser(u.name, { password_hash: '', tags }));
  }
  for (const p of await grantablePermissions(api, defs))
    await step(`permissions of ${p.user}`, () => api.setPermissions(vhost, p.user, { configure: p.configure, write: p.write, read: p.read }));
  for (const p of await grantableTopicPermissions(api, defs)) {
    await step(`topic permissions of ${p.user} on ${p.exchange}`, () =>
      api.setTopicPermissions(vhost, p.user, { exchange: p.exchange, write: p.write, read: p.read }),
    );
  }
  for (const e of defs.exchanges) await step(`exchange ${e.name}`, () => declareExchange(api, vhost, e, opts.log));
  for (const p of defs.policies)
    await step(`policy ${p.name}`, () =>
      api.putPolicy(vhost, p.name, { pattern: p.pattern, 'apply-to': p['apply-to'], priority: p.priority, definition: p.definition }),
    );
  // Quorum queues get one member per running node, three at most (declaredArguments).
  const runningNodes = (await api.listNodes()).filter((n) => n.running).length;
  for (const q of defs.queues)
    await step(`queue ${q.name}`, async () =>
      api.putQueue(vhost, q.name, {
        durable: q.durable,
        auto_delete: q.auto_delete,
        arguments: declaredArguments(q, await api.getQueue(vhost, q.name), runningNodes),
      }),
    );
  for (const b of defs.bindings) await step(`binding ${b.source} -> ${b.destination}`, () => api.putBinding(vhost, b));

  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    const problems: string[] = [];
    const infos = new Map((await api.listQueues(vhost)).map((q) => [q.name, q]));
    for (const q of defs.queues) {
      const info = infos.get(q.name);
      if (!info || info.effective_policy_definition === undefined) problems.push(`queue ${q.name}: no effective policy visible yet`);
      else problems.push(...policyProblems(q.name, info, defs));
    }
    if (problems.length === 0) break;
    if (Date.now() >= deadline) throw new TopologyError(problems, `topology apply (vhost ${vhost})`);
    await sleep(500);
  }
  opts.log.info(
    {
      vhost,
      exchanges: defs.exchanges.length,
      queues: defs.queues.length,
      policies: defs.policies.length,
      nodes: runningNodes,
      quorumMembers: quorumGroupSize(runningNodes),
    },
    'topology applied',
  );
}
