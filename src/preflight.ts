import net from 'node:net';
import type { Config } from './config';
import { parseNodeList } from './broker/nodes';

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

/** Host and port of each node of a list, and why none answers; '' as soon as one does. */
async function firstReachable(list: string, defaultPort: (protocol: string) => number): Promise<{ where: string; why: string }> {
  const failed: string[] = [];
  const whys: string[] = [];
  for (const entry of parseNodeList(list)) {
    const url = new URL(entry);
    const port = Number(url.port || defaultPort(url.protocol));
    const why = await probeTcp(url.hostname, port);
    if (!why) return { where: '', why: '' };
    failed.push(`${url.hostname}:${port}`);
    whys.push(why);
  }
  return { where: failed.join(', '), why: [...new Set(whys)].join(', ') };
}

/** One line naming what is missing when RabbitMQ or its management API cannot be reached (no node of a list answers); '' when both answer. */
export async function brokerPreflight(config: Config): Promise<string> {
  const amqpDown = await firstReachable(config.amqp.url, (protocol) => (protocol === 'amqps:' ? 5671 : 5672));
  if (amqpDown.where) return `RabbitMQ is not reachable at ${amqpDown.where} (${amqpDown.why}): ${RABBITMQ_HINT}`;
  const mgmtDown = await firstReachable(config.amqp.managementUrl, (protocol) => (protocol === 'https:' ? 443 : 80));
  if (mgmtDown.where) {
    return `RabbitMQ's management API is not reachable at ${mgmtDown.where} (${mgmtDown.why}): enable it with \`rabbitmq-plugins enable rabbitmq_management\``;
  }
  return '';
}
