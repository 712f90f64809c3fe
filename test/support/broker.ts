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
  await run('rabbitmqctl', ['await_startup', '--timeout', '120'], { timeout: 150_000 });
  // The management listener comes up a moment after the node reports started.
  const deadline = Date.now() + 60_000;
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
