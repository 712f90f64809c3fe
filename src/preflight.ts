import net from 'node:net';
import type { Config } from './config';

export const RABBITMQ_HINT =
  'start it with `rabbitmq-server -detached` (Debian: `apt-get install rabbitmq-server`, then `rabbitmq-plugins enable rabbitmq_management`)';

/** Resolves to '' when a TCP connection to the AMQP port succeeds, else why not. */
export function probeTcp(host: string, port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (why: string) => {
      socket.destroy();
      resolve(why);
    };
    socket.setTimeout(timeoutMs, () => done('timed out'));
    socket.once('connect', () => done(''));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message));
  });
}

/** One line naming what is missing when RabbitMQ or its management API cannot be reached; '' when both answer. */
export async function brokerPreflight(config: Config): Promise<string> {
  const amqpUrl = new URL(config.amqp.url);
  const amqpPort = Number(amqpUrl.port || (amqpUrl.protocol === 'amqps:' ? 5671 : 5672));
  const amqpWhy = await probeTcp(amqpUrl.hostname, amqpPort);
  if (amqpWhy) return `RabbitMQ is not reachable at ${amqpUrl.hostname}:${amqpPort} (${amqpWhy}): ${RABBITMQ_HINT}`;
  const mgmt = new URL(config.amqp.managementUrl);
  const mgmtPort = Number(mgmt.port || (mgmt.protocol === 'https:' ? 443 : 80));
  const mgmtWhy = await probeTcp(mgmt.hostname, mgmtPort);
  if (mgmtWhy) {
    return `RabbitMQ's management API is not reachable at ${mgmt.hostname}:${mgmtPort} (${mgmtWhy}): enable it with \`rabbitmq-plugins enable rabbitmq_management\``;
  }
  return '';
}
