import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { localServices } from './harness';

const run = promisify(execFile);

/**
 * Stops and starts the whole RabbitMQ node. Not `stop_app`/`start_app`: on
 * the RabbitMQ 3.10.8 these machines run, `start_app` leaves the quorum
 * queues' at-least-once dead-letter supervisor (rabbit_fifo_dlx_sup) dead,
 * and every later declaration of such a queue fails until a full restart.
 */
export async function stopBroker(): Promise<void> {
  await run('rabbitmqctl', ['stop'], { timeout: 120_000 });
}

export async function startBroker(): Promise<void> {
  await run('rabbitmq-server', ['-detached'], { timeout: 60_000 });
  // `await_startup` fails at once until the detached node has registered itself.
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      await run('rabbitmqctl', ['await_startup', '--timeout', '60'], { timeout: 90_000 });
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  // The management listener comes up a moment after the node reports started.
  // The node the tests use (WARREN_TEST_MANAGEMENT_URL), which rabbitmqctl
  // targets through the RABBITMQ_* environment of the run.
  const overview = managementOverview();
  while (Date.now() < deadline) {
    try {
      const res = await fetch(overview.url, { headers: { authorization: overview.authorization } });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error('the RabbitMQ management API did not come back within 60 s');
}

/** The management API's overview of the tests' node, its credentials moved from the URL to a header (fetch refuses them in the URL). */
function managementOverview(): { url: string; authorization: string } {
  const base = new URL(localServices('WARREN_TEST').managementUrl);
  const credentials = `${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`;
  base.username = '';
  base.password = '';
  return {
    url: new URL('api/overview', base.href.endsWith('/') ? base.href : `${base.href}/`).href,
    authorization: 'Basic ' + Buffer.from(credentials).toString('base64'),
  };
}

export async function stopBrokerApp(): Promise<void> {
  await run('rabbitmqctl', ['stop_app'], { timeout: 120_000 });
}

export async function startBrokerApp(): Promise<void> {
  await run('rabbitmqctl', ['start_app'], { timeout: 120_000 });
  await run('rabbitmqctl', ['await_startup', '--timeout', '60'], { timeout: 90_000 });
}

/** Restarts the node if `start_app` left the at-least-once dead-letter supervisor dead (see stopBroker). */
export async function healBroker(): Promise<boolean> {
  const { stdout } = await run('rabbitmqctl', ['eval', 'whereis(rabbit_fifo_dlx_sup).'], { timeout: 60_000 });
  if (!stdout.includes('undefined')) return false;
  await stopBroker();
  await startBroker();
  return true;
}

/** Raises or clears the broker's memory alarm: publishing connections are blocked while it holds. */
export async function setMemoryAlarm(on: boolean): Promise<void> {
  await run('rabbitmqctl', ['set_vm_memory_high_watermark', on ? '0.0000001' : '0.4'], { timeout: 60_000 });
}

export async function closeVhostConnections(vhost: string, reason: string): Promise<void> {
  await run('rabbitmqctl', ['close_all_connections', '-p', vhost, reason], { timeout: 60_000 });
}

/** The node's delivery acknowledgement timeout (`consumer_timeout`, ms), or undefined when none is set. */
export async function consumerTimeout(): Promise<number | undefined> {
  const { stdout } = await run('rabbitmqctl', ['eval', 'application:get_env(rabbit, consumer_timeout).'], { timeout: 60_000 });
  const set = /\{ok,\s*(\d+)\}/.exec(stdout);
  if (set) return Number(set[1]);
  if (stdout.trim() === 'undefined') return undefined;
  throw new Error(`unexpected consumer_timeout: ${stdout.trim()}`);
}

/**
 * Sets (or, with undefined, unsets) the node's `consumer_timeout`. A channel
 * reads it when it opens, so it applies to channels opened after this; the
 * node is shared, so a test lowers it only while it opens its own channel.
 */
export async function setConsumerTimeout(ms: number | undefined): Promise<void> {
  if (ms !== undefined && (!Number.isInteger(ms) || ms < 15_000)) throw new Error(`refusing consumer_timeout ${ms}: other users share this node`);
  const expr = ms === undefined ? 'application:unset_env(rabbit, consumer_timeout).' : `application:set_env(rabbit, consumer_timeout, ${ms}).`;
  await run('rabbitmqctl', ['eval', expr], { timeout: 60_000 });
  const now = await consumerTimeout();
  if (now !== ms) throw new Error(`consumer_timeout is ${now}, not ${ms}`);
}
