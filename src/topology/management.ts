/** @file
 * A small typed client for the RabbitMQ management HTTP API: what
 * `topology apply`, the start-up check and the tests need, nothing more.
 * The base URL may carry credentials (http://guest:guest@host:15672); fetch
 * refuses URLs with userinfo, so they are moved into a Basic auth header.
 * A cluster's nodes may be listed comma-separated: every node serves the
 * whole cluster's API, so a request that cannot reach one node goes to the
 * next (in this process's order), and later requests stay on the node that
 * answered.
 */
import { nodeLabel, parseNodeList, processOrder } from '../broker/nodes';

export class ManagementError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ManagementError';
  }
}

export type PolicyValue = string | number | boolean | string[];
export type PolicyDefinition = Record<string, PolicyValue>;

export interface ExchangeSpec {
  type: string;
  durable: boolean;
  auto_delete: boolean;
  internal: boolean;
  arguments: Record<string, unknown>;
}

export interface QueueSpec {
  durable: boolean;
  auto_delete: boolean;
  arguments: Record<string, unknown>;
}

export interface PolicySpec {
  pattern: string;
  'apply-to': string;
  priority: number;
  definition: PolicyDefinition;
}

export interface Permissions {
  configure: string;
  write: string;
  read: string;
}

/** RabbitMQ checks these against the routing key, and only on topic exchanges. */
export interface TopicPermissions {
  exchange: string;
  write: string;
  read: string;
}

export interface TopicPermissionInfo extends TopicPermissions {
  user: string;
  vhost: string;
}

export interface ExchangeInfo extends ExchangeSpec {
  name: string;
  vhost: string;
}

/**
 * Queue statistics (policy, effective_policy_definition, consumers, messages)
 * appear only once the queue has emitted stats (every 5 s by default), so they
 * are optional: absent means "not known yet", not "none".
 */
export interface QueueInfo extends QueueSpec {
  name: string;
  vhost: string;
  type: string;
  /** Only for a queue one connection owns (the API's live-notification queue). */
  exclusive?: boolean;
  policy?: string | null;
  effective_policy_definition?: PolicyDefinition;
  consumers?: number;
  messages?: number;
  messages_ready?: number;
  messages_unacknowledged?: number;
  /** Counters and rates since the queue started; absent until something happened. */
  message_stats?: MessageStats;
  /** The node a classic queue lives on; of a quorum queue, its leader's. */
  node?: string;
  /** A quorum queue's leader and its members (Erlang node names), and the members that are up. */
  leader?: string;
  members?: string[];
  online?: string[];
}

/** One of the broker's samples: a gauge (a queue's depth) or a counter (messages published so far), at epoch ms. */
export interface Sample {
  sample: number;
  timestamp: number;
}

/** A queue with the samples asked for with `lengths_age` and `msg_rates_age`, newest first. */
export interface QueueHistory extends QueueInfo {
  messages_details?: RateDetails & { samples?: Sample[] };
  message_stats?: MessageStats & { publish_details?: RateDetails & { samples?: Sample[] } };
}

/** A node of the cluster, as `GET /api/nodes` lists it (monitoring users may read it). */
export interface NodeInfo {
  name: string;
  running: boolean;
}

export interface RateDetails {
  rate: number;
}

/** What `warren status` reads: publishes into the queue, deliveries out of it (consume and get), acks. */
export interface MessageStats {
  publish?: number;
  publish_details?: RateDetails;
  deliver_get?: number;
  deliver_get_details?: RateDetails;
  ack?: number;
  ack_details?: RateDetails;
  redeliver?: number;
  redeliver_details?: RateDetails;
}

export interface BindingInfo {
  source: string;
  vhost: string;
  destination: string;
  destination_type: 'queue' | 'exchange';
  routing_key: string;
  arguments: Record<string, unknown>;
  properties_key: string;
}

export interface PolicyInfo extends PolicySpec {
  name: string;
  vhost: string;
}

export interface PermissionInfo extends Permissions {
  user: string;
  vhost: string;
}

export interface ConnectionInfo {
  name: string;
  vhost: string;
  user: string;
  state?: string;
  client_properties?: { connection_name?: string; [key: string]: unknown };
}

export interface ConsumerInfo {
  consumer_tag: string;
  queue: { name: string; vhost: string };
  channel_details: { connection_name: string; name: string };
  prefetch_count: number;
  ack_required: boolean;
  active?: boolean;
}

const seg = encodeURIComponent;

/** The URL (or each URL of a node list) with its password masked, for error messages and logs. */
export function withoutPassword(url: string): string {
  return parseNodeList(url)
    .map((entry) => {
      try {
        const u = new URL(entry);
        if (u.password) u.password = '***';
        return u.toString();
      } catch {
        return '(unparseable URL)';
      }
    })
    .join(',');
}

interface ManagementNode {
  base: string;
  auth: string | undefined;
}

function managementNode(url: string): ManagementNode {
  const u = new URL(url);
  const auth = u.username ? 'Basic ' + Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64') : undefined;
  u.username = '';
  u.password = '';
  return { base: u.toString().replace(/\/+$/, ''), auth };
}

export class ManagementClient {
  private readonly nodes: ManagementNode[];
  /** The node that answered last: requests go there first. */
  private current = 0;

  constructor(
    url: string,
    private readonly timeoutMs = 15_000,
  ) {
    this.nodes = processOrder(parseNodeList(url)).map(managementNode);
    if (this.nodes.length === 0) throw new ManagementError(`no management API URL in ${JSON.stringify(url)}`);
  }

  /** The base URL of the node in use, without credentials, for messages and logs. */
  get url(): string {
    return this.nodes[this.current]!.base;
  }

  /** `host:port` of the node in use. */
  get node(): string {
    return nodeLabel(this.url);
  }

  private async request(method: string, path: string, body?: unknown, extra: Record<string, string> = {}): Promise<Response> {
    const failures: string[] = [];
    for (let tried = 0; tried < this.nodes.length; tried++) {
      const index = (this.current + tried) % this.nodes.length;
      const node = this.nodes[index]!;
      const headers: Record<string, string> = { accept: 'application/json', ...extra };
      if (node.auth) headers.authorization = node.auth;
      if (body !== undefined) headers['content-type'] = 'application/json';
      try {
        // A hung management API must not hang a start-up check or a deploy.
        const signal = AbortSignal.timeout(this.timeoutMs);
        const res = await fetch(`${node.base}/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
        this.current = index;
        return res;
      } catch (err) {
        const cause = (err as Error & { cause?: Error }).cause;
        failures.push(`${node.base}: ${cause?.message ?? (err as Error).message}`);
      }
    }
    throw new ManagementError(`management API unreachable at ${failures.join('; ')}`);
  }

  private async fail(method: string, path: string, res: Response): Promise<never> {
    const text = (await res.text().catch(() => '')).slice(0, 500);
    throw new ManagementError(`management API ${method} ${path}: ${res.status} ${res.statusText} ${text}`.trim(), res.status);
  }

  /** A write; succeeds on any 2xx. `okIfMissing` treats 404 as success (deletes). */
  private async send(method: string, path: string, body?: unknown, okIfMissing = false, extra?: Record<string, string>): Promise<void> {
    const res = await this.request(method, path, body, extra);
    if (res.ok || (okIfMissing && res.status === 404)) {
      await res.body?.cancel();
      return;
    }
    await this.fail(method, path, res);
  }

  /** A read; `undefined` when the object does not exist. */
  private async get<T>(path: string): Promise<T | undefined> {
    const res = await this.request('GET', path);
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) await this.fail('GET', path, res);
    return (await res.json()) as T;
  }

  private async list<T>(path: string): Promise<T[]> {
    return (await this.get<T[]>(path)) ?? [];
  }

  /**
   * Read from the list, not `/vhosts/<name>`: that one is for administrators,
   * and the start-up checks run as a monitoring user.
   */
  async vhostExists(vhost: string): Promise<boolean> {
    return (await this.list<{ name: string }>('/vhosts?columns=name')).some((v) => v.name === vhost);
  }

  createVhost(vhost: string): Promise<void> {
    return this.send('PUT', `/vhosts/${seg(vhost)}`, {});
  }

  /** Deletes the vhost and everything in it; a missing vhost is not an error. */
  deleteVhost(vhost: string): Promise<void> {
    return this.send('DELETE', `/vhosts/${seg(vhost)}`, undefined, true);
  }

  async userExists(user: string): Promise<boolean> {
    return (await this.get<{ name: string }>(`/users/${seg(user)}`)) !== undefined;
  }

  /**
   * Creates or updates a user; an empty `password_hash` makes one that cannot
   * log in with a password. `tags` is comma-separated (`monitoring`).
   */
  putUser(user: string, spec: { password: string; tags: string } | { password_hash: ''; tags: string }): Promise<void> {
    return this.send('PUT', `/users/${seg(user)}`, spec);
  }

  deleteUser(user: string): Promise<void> {
    return this.send('DELETE', `/users/${seg(user)}`, undefined, true);
  }

  setPermissions(vhost: string, user: string, perms: Permissions): Promise<void> {
    return this.send('PUT', `/permissions/${seg(vhost)}/${seg(user)}`, perms);
  }

  /** Routing keys a user may publish with (write) and bind with (read) on one topic exchange. */
  setTopicPermissions(vhost: string, user: string, perms: TopicPermissions): Promise<void> {
    return this.send('PUT', `/topic-permissions/${seg(vhost)}/${seg(user)}`, perms);
  }

  /** A user's topic permissions on the vhost, one per exchange. */
  listTopicPermissions(vhost: string, user: string): Promise<TopicPermissionInfo[]> {
    return this.list<TopicPermissionInfo>(`/topic-permissions/${seg(vhost)}/${seg(user)}`);
  }

  putExchange(vhost: string, name: string, spec: ExchangeSpec): Promise<void> {
    return this.send('PUT', `/exchanges/${seg(vhost)}/${seg(name)}`, spec);
  }

  getExchange(vhost: string, name: string): Promise<ExchangeInfo | undefined> {
    return this.get<ExchangeInfo>(`/exchanges/${seg(vhost)}/${seg(name)}`);
  }

  deleteExchange(vhost: string, name: string): Promise<void> {
    return this.send('DELETE', `/exchanges/${seg(vhost)}/${seg(name)}`, undefined, true);
  }

  putQueue(vhost: string, name: string, spec: QueueSpec): Promise<void> {
    return this.send('PUT', `/queues/${seg(vhost)}/${seg(name)}`, spec);
  }

  getQueue(vhost: string, name: string): Promise<QueueInfo | undefined> {
    return this.get<QueueInfo>(`/queues/${seg(vhost)}/${seg(name)}`);
  }

  listQueues(vhost: string): Promise<QueueInfo[]> {
    return this.list<QueueInfo>(`/queues/${seg(vhost)}`);
  }

  /** The queues with the broker's samples of their depth and message rates over the last `ageSeconds`, one per `incrSeconds` (the console's charts). */
  listQueueHistory(vhost: string, ageSeconds: number, incrSeconds: number): Promise<QueueHistory[]> {
    const q = `lengths_age=${ageSeconds}&lengths_incr=${incrSeconds}&msg_rates_age=${ageSeconds}&msg_rates_incr=${incrSeconds}`;
    return this.list<QueueHistory>(`/queues/${seg(vhost)}?${q}`);
  }

  deleteQueue(vhost: string, name: string): Promise<void> {
    return this.send('DELETE', `/queues/${seg(vhost)}/${seg(name)}`, undefined, true);
  }

  /** Binding is idempotent: the same binding twice is one binding. */
  putBinding(vhost: string, binding: Pick<BindingInfo, 'source' | 'destination' | 'destination_type' | 'routing_key' | 'arguments'>): Promise<void> {
    const dest = binding.destination_type === 'queue' ? 'q' : 'e';
    return this.send('POST', `/bindings/${seg(vhost)}/e/${seg(binding.source)}/${dest}/${seg(binding.destination)}`, {
      routing_key: binding.routing_key,
      arguments: binding.arguments,
    });
  }

  /** Bindings whose destination is this queue, the default exchange's included. */
  queueBindings(vhost: string, queue: string): Promise<BindingInfo[]> {
    return this.list<BindingInfo>(`/queues/${seg(vhost)}/${seg(queue)}/bindings`);
  }

  /** Takes a binding as listed (its `properties_key` names it). */
  deleteBinding(binding: Pick<BindingInfo, 'vhost' | 'source' | 'destination' | 'destination_type' | 'properties_key'>): Promise<void> {
    const { vhost, source, destination, properties_key } = binding;
    const dest = binding.destination_type === 'queue' ? 'q' : 'e';
    return this.send('DELETE', `/bindings/${seg(vhost)}/e/${seg(source)}/${dest}/${seg(destination)}/${seg(properties_key)}`, undefined, true);
  }

  /** Every binding of the vhost, the default exchange's included. */
  listBindings(vhost: string): Promise<BindingInfo[]> {
    return this.list<BindingInfo>(`/bindings/${seg(vhost)}`);
  }

  listExchanges(vhost: string): Promise<ExchangeInfo[]> {
    return this.list<ExchangeInfo>(`/exchanges/${seg(vhost)}`);
  }

  listPolicies(vhost: string): Promise<PolicyInfo[]> {
    return this.list<PolicyInfo>(`/policies/${seg(vhost)}`);
  }

  /** A user's permissions on the vhost; `undefined` when it has none (or does not exist). */
  getPermissions(vhost: string, user: string): Promise<PermissionInfo | undefined> {
    return this.get<PermissionInfo>(`/permissions/${seg(vhost)}/${seg(user)}`);
  }

  putPolicy(vhost: string, name: string, spec: PolicySpec): Promise<void> {
    return this.send('PUT', `/policies/${seg(vhost)}/${seg(name)}`, spec);
  }

  deletePolicy(vhost: string, name: string): Promise<void> {
    return this.send('DELETE', `/policies/${seg(vhost)}/${seg(name)}`, undefined, true);
  }

  /** The cluster's nodes, the stopped ones included (a single broker is a cluster of one). */
  listNodes(): Promise<NodeInfo[]> {
    return this.list<NodeInfo>('/nodes?columns=name,running');
  }

  listConnections(vhost?: string): Promise<ConnectionInfo[]> {
    return this.list<ConnectionInfo>(vhost === undefined ? '/connections' : `/vhosts/${seg(vhost)}/connections`);
  }

  /** Closes a client connection by its broker-side name (fault tests, operators). */
  closeConnection(name: string, reason = 'closed through the management API'): Promise<void> {
    return this.send('DELETE', `/connections/${seg(name)}`, undefined, true, { 'x-reason': reason });
  }

  listConsumers(vhost?: string): Promise<ConsumerInfo[]> {
    return this.list<ConsumerInfo>(vhost === undefined ? '/consumers' : `/consumers/${seg(vhost)}`);
  }
}
