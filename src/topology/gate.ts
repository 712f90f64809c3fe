import type { Logger } from '../log';
import { TopologyError, type Definitions, type TopologyNeeds } from './definitions';
import { checkTopology } from './check';

/** What a service needs of the broker, and where to look. */
export interface TopologyGateOptions extends TopologyNeeds {
  managementUrl: string;
  vhost: string;
  defs: Definitions;
  log: Logger;
}

/**
 * The start-up check of a service: resolves once what it uses exists with
 * the effective policy it needs; rejects with a one-line TopologyError when
 * the broker answers and something is missing or wrong. While the broker (or
 * its management API) is unreachable it keeps waiting: an outage delays a
 * service, it does not stop it.
 */
export async function awaitTopology(needs: TopologyGateOptions, retryMs = 1000, signal?: { stopped: boolean }): Promise<void> {
  let lastWhy = '';
  for (;;) {
    try {
      await checkTopology({ managementUrl: needs.managementUrl, vhost: needs.vhost, defs: needs.defs, queues: needs.queues, exchanges: needs.exchanges });
      if (lastWhy) needs.log.info('broker topology verified');
      return;
    } catch (err) {
      if (err instanceof TopologyError) throw err;
      const why = (err as Error).message;
      if (why !== lastWhy) needs.log.warn({ err: why }, 'cannot verify broker topology yet; retrying');
      lastWhy = why;
    }
    if (signal?.stopped) return;
    await new Promise((r) => setTimeout(r, retryMs));
  }
}
