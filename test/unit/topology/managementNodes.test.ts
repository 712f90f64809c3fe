/** @file
 * The management client and the one-shot AMQP connect over a cluster's node
 * list, against local listeners standing in for nodes (one answers, the
 * others refuse): the next node is asked, the one that answered is kept.
 */
import http from 'node:http';
import net from 'node:net';
import { expect } from 'chai';
import { ManagementClient, withoutPassword } from '../../../src/topology/management';
import { connectOnce } from '../../../src/broker/connection';
import { freePort } from '../../support/harness';

/** A management API that lists one vhost and counts the requests it got. */
async function answeringNode(): Promise<{ port: number; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify([{ name: 'warren' }]));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('a cluster node list: the management API and one-shot connects', () => {
  it('asks the next node when one cannot be reached, keeps the node that answered, and sends each its own credentials', async () => {
    const up = await answeringNode();
    const down = [await freePort(), await freePort()];
    try {
      const list = [`http://a:pa@127.0.0.1:${down[0]}`, `http://b:pb@127.0.0.1:${up.port}`, `http://c:pc@127.0.0.1:${down[1]}`].join(',');
      const api = new ManagementClient(list, 2000);
      expect(await api.vhostExists('warren')).to.equal(true);
      expect(api.node).to.equal(`127.0.0.1:${up.port}`);
      expect(await api.vhostExists('other')).to.equal(false);
      expect(up.requests).to.have.length(2);
      expect(up.requests[0]).to.equal(`GET /api/vhosts?columns=name Basic ${Buffer.from('b:pb').toString('base64')}`);
    } finally {
      await up.close();
    }
  });

  it('names every node it tried when none answers', async () => {
    const ports = [await freePort(), await freePort()];
    const api = new ManagementClient(ports.map((p) => `http://u:secret@127.0.0.1:${p}`).join(','), 2000);
    const err = (await api.vhostExists('warren').then(
      () => undefined,
      (e: unknown) => e,
    )) as Error;
    expect(err.message).to.match(/^management API unreachable at /);
    for (const p of ports) expect(err.message).to.contain(`http://127.0.0.1:${p}`);
    expect(err.message).not.to.contain('secret');
  });

  it('masks every password of a node list', () => {
    expect(withoutPassword('amqp://u:one@a:5672/v,amqp://u:two@b:5672/v')).to.equal('amqp://u:***@a:5672/v,amqp://u:***@b:5672/v');
  });

  it('connects once to the first node that takes it, and names every node when none does', async () => {
    const ports = [await freePort(), await freePort()];
    const err = (await connectOnce(ports.map((p) => `amqp://u:secret@127.0.0.1:${p}/warren`).join(','), 'nodes test', 'inspect').then(
      () => undefined,
      (e: unknown) => e,
    )) as Error;
    expect(err.message).to.match(/^no node answered \(/);
    for (const p of ports) expect(err.message).to.contain(`127.0.0.1:${p}: `);
    expect(err.message).not.to.contain('secret');
  });
});
