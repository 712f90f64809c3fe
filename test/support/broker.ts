import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

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
  while (Date.now() < deadline) {
    try {
      const res = await fetch('http://127.0.0.1:15672/api/overview', { headers: { authorization: 'Basic ' + Buffer.from('guest:guest').toString('base64') } });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error('the RabbitMQ management API did not come back within 60 s');
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
