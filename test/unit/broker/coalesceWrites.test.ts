import net from 'node:net';
import { expect } from 'chai';
import sinon from 'sinon';
import { coalesceWrites } from '../../../src/broker/connection';

describe('coalesced socket writes', () => {
  let server: net.Server;
  let client: net.Socket;
  let received: Buffer[];

  beforeEach(async () => {
    received = [];
    server = net.createServer((peer) => peer.on('data', (chunk: Buffer) => received.push(chunk)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    client.setNoDelay(true);
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  });

  afterEach(async () => {
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const arrived = async (bytes: number) => {
    for (let i = 0; i < 200 && Buffer.concat(received).length < bytes; i++) await new Promise((r) => setTimeout(r, 5));
    return Buffer.concat(received).toString();
  };

  it('sends the writes of one turn in one writev, in order', async () => {
    const socket = client as unknown as { _write: () => void; _writev: () => void };
    const single = sinon.spy(socket, '_write');
    const vector = sinon.spy(socket, '_writev');
    coalesceWrites(client as never);
    expect(client.write('method|')).to.equal(true);
    client.write('header|');
    client.write('body');
    expect(single.called || vector.called, 'nothing leaves before the turn ends').to.equal(false);
    expect(await arrived(18)).to.equal('method|header|body');
    expect(single.callCount).to.equal(0);
    expect(vector.callCount).to.equal(1);
  });

  it("uncorks after each turn: a later turn's write goes out by itself, nothing is held back", async () => {
    coalesceWrites(client as never);
    client.write('first');
    expect(await arrived(5)).to.equal('first');
    await new Promise((r) => setImmediate(r));
    client.write('-second');
    expect(await arrived(12)).to.equal('first-second');
    expect(client.writableCorked).to.equal(0);
  });
});
