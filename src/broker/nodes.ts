/** @file
 * A cluster's nodes as configuration lists them: `amqp.url` and
 * `amqp.managementUrl` may each name several, comma-separated. Each process
 * walks them in an order of its own (shuffled once per process, so that a
 * fleet spreads over the nodes instead of piling onto the first), and after
 * losing a node tries the next one in that order, so the node just lost is
 * the last one it dials again. Pure: the shuffle takes its random source.
 */

/** The entries of a comma-separated node list, trimmed; empty entries are dropped. */
export function parseNodeList(list: string): string[] {
  return list
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}

/** `host:port` of a node's URL (the default port of its scheme when it has none), for logs and connection names. */
export function nodeLabel(url: string): string {
  try {
    const u = new URL(url);
    const defaults: Record<string, string> = { 'amqp:': '5672', 'amqps:': '5671', 'http:': '80', 'https:': '443' };
    return `${u.hostname}:${u.port || defaults[u.protocol] || ''}`;
  } catch {
    return '(unparseable URL)';
  }
}

/** A copy of `items` in random order (Fisher-Yates); `random` returns [0, 1) as Math.random does. */
export function shuffled<T>(items: readonly T[], random: () => number = Math.random): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/**
 * This process's order of the nodes: shuffled the first time a list of
 * these nodes is asked for, the same order after that, so that all of a
 * process's connections (publish, consume, live) start on one node and its
 * logs name one node. Keyed by the nodes' labels, not the URLs: each
 * service's URLs carry its own credentials.
 */
const processOrders = new Map<string, string[]>();

export function processOrder(urls: readonly string[], random: () => number = Math.random): string[] {
  const labels = urls.map(nodeLabel);
  const key = [...labels].sort().join(',');
  let order = processOrders.get(key);
  if (!order) {
    order = shuffled([...new Set(labels)], random);
    processOrders.set(key, order);
  }
  const rank = (url: string) => order.indexOf(nodeLabel(url));
  return [...urls].sort((a, b) => rank(a) - rank(b));
}

/**
 * Which node to dial next: round the list from where the last attempt was.
 * A lost node was the last one dialled, so every other node is tried before
 * it; one that refused is passed over until the list comes round again.
 */
export class NodeRotation {
  private nextIndex = 0;

  constructor(readonly urls: readonly string[]) {
    if (urls.length === 0) throw new Error('a node list needs at least one node');
  }

  /** The node to dial now; the one after it comes next. */
  next(): string {
    const url = this.urls[this.nextIndex]!;
    this.nextIndex = (this.nextIndex + 1) % this.urls.length;
    return url;
  }
}
