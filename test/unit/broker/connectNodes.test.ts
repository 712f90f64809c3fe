/** @file
 * connectBroker over a node list, against three local TCP listeners that
 * stand in for cluster nodes and hang up on every client: the order the
 * reconnecting connection dials them in, and what its logs name.
 */
import net from 'node:net';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import { connectBroker } from '../../../src/broker/connection';
import { createLogger } from '../../../src/log';
import { waitFor } from '../../support/wait';

/** A listener that notes each client and closes on it once it has sent the AMQP protocol header. */
async function hangingUpNode(dials: string[]): Promise<{ url: string; label: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('data', () => {
      dials.push(label);
      socket.destroy();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const label = `127.0.0.1:${port}`;
  return {
    url: `amqp://guest:guest@${label}/warren`,
    label,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('connectBroker over a cluster node list', () => {
  it('dials every node once before any twice, each process in an order of its own, and logs the node that failed', async () => {
    const dials: string[] = [];
    const nodes = await Promise.all([hangingUpNode(dials), hangingUpNode(dials), hangingUpNode(dials)]);
    const lines: { msg: string; node?: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as { msg: string; node?: string });
        done();
      },
    });
    const connection = connectBroker({
      url: nodes.map((n) => n.url).join(','),
      service: 'nodes test',
      role: 'consume',
      heartbeatSeconds: 5,
      reconnectSeconds: 0.02,
      log: createLogger('nodes-test', 'info', sink),
    });
    try {
      await waitFor('seven dials', () => Promise.resolve(dials.length >= 7), 5000, 10);
      const round = dials.slice(0, 3);
      expect(new Set(round).size, `the first round dials each node: ${dials.join(' ')}`).to.equal(3);
      // Then the same order again: a refused node comes round only after every other.
      expect(dials.slice(3, 6)).to.deep.equal(round);
      expect(connection.isConnected()).to.equal(false);
      expect(connection.node).to.equal(undefined);
      expect(connection.name).to.match(/^warren nodes test .* pid \d+ consume$/);
      const failed = lines.filter((l) => /unreachable, trying the next/.test(l.msg)).map((l) => l.node);
      expect(failed.slice(0, 3)).to.deep.equal(round);
    } finally {
      await connection.close();
      await Promise.all(nodes.map((n) => n.close()));
    }
  });
});
