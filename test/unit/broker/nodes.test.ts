/** @file
 * A cluster's node list: parsing, the per-process shuffle, and the order a
 * connection dials nodes in, after a loss too.
 */
import { expect } from 'chai';
import { NodeRotation, nodeLabel, parseNodeList, processOrder, shuffled } from '../../../src/broker/nodes';

/** A fixed sequence of "random" numbers, as Math.random would return them. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

describe('cluster node lists', () => {
  it('splits a comma-separated list, trimming entries and dropping empty ones', () => {
    expect(parseNodeList('amqp://a:5701/v, amqp://b:5702/v ,,amqp://c:5703/v,')).to.deep.equal(['amqp://a:5701/v', 'amqp://b:5702/v', 'amqp://c:5703/v']);
    expect(parseNodeList('amqp://guest:guest@127.0.0.1:5672/warren')).to.deep.equal(['amqp://guest:guest@127.0.0.1:5672/warren']);
    expect(parseNodeList(' , ')).to.deep.equal([]);
  });

  it("labels a node by host and port, the scheme's default port when none is given, never its credentials", () => {
    expect(nodeLabel('amqp://user:secret@rabbit-2:5702/warren')).to.equal('rabbit-2:5702');
    expect(nodeLabel('amqp://rabbit-2/warren')).to.equal('rabbit-2:5672');
    expect(nodeLabel('amqps://rabbit-2')).to.equal('rabbit-2:5671');
    expect(nodeLabel('http://u:p@rabbit-2')).to.equal('rabbit-2:80');
    expect(nodeLabel('not a url')).to.equal('(unparseable URL)');
  });

  it('shuffles every order possible, each about as often (Fisher-Yates)', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 6000; i++) {
      const order = shuffled(['a', 'b', 'c']).join('');
      counts.set(order, (counts.get(order) ?? 0) + 1);
    }
    expect([...counts.keys()].sort()).to.deep.equal(['abc', 'acb', 'bac', 'bca', 'cab', 'cba']);
    for (const n of counts.values()) expect(n).to.be.within(800, 1200);
    expect(shuffled(['a', 'b', 'c'], sequence(0, 0))).to.deep.equal(['b', 'c', 'a']);
  });

  it('puts different processes on different first nodes, and keeps one order within a process', () => {
    const firsts = new Set<string>();
    for (let i = 0; i < 50; i++) firsts.add(shuffled(['n1', 'n2', 'n3'])[0]!);
    expect(firsts.size, 'first nodes over 50 processes').to.equal(3);

    // Within one process: asked again (another connection, another service's credentials), the same node order.
    const list = ['amqp://x1:6001/v', 'amqp://x2:6002/v', 'amqp://x3:6003/v'];
    const first = processOrder(list, sequence(0.99, 0.0));
    const again = processOrder(['amqp://u:p@x3:6003/v', 'amqp://u:p@x1:6001/v', 'amqp://u:p@x2:6002/v'], () => 0.5);
    expect(again.map(nodeLabel)).to.deep.equal(first.map(nodeLabel));
    expect(again[0]).to.match(/^amqp:\/\/u:p@/);
  });

  it('dials the nodes round the list, so that after a loss every other node comes before the one lost', () => {
    const rotation = new NodeRotation(['a', 'b', 'c']);
    expect(rotation.next(), 'first dial').to.equal('a');
    // Connected to a; a is lost: b next, then c, and a only when both refused.
    expect([rotation.next(), rotation.next(), rotation.next()]).to.deep.equal(['b', 'c', 'a']);
    // Connected to a again after a round; lost again: b first once more.
    expect(rotation.next()).to.equal('b');
    expect(() => new NodeRotation([])).to.throw(/at least one node/);
  });

  it('keeps a single node the one node it dials', () => {
    const rotation = new NodeRotation(['only']);
    expect([rotation.next(), rotation.next()]).to.deep.equal(['only', 'only']);
  });
});
