import { expect } from 'chai';
import { CATCH_UP_PAGE, NotificationStream } from '../../../src/api/notificationStream';
import type { StreamedNotification } from '../../../src/db/repositories/readModels';
import { newId } from '../../../src/domain/ids';

/** Stored notifications at stream positions `from`, `from + 1`, ... */
function notifications(n: number, from = 1): StreamedNotification[] {
  return Array.from({ length: n }, (_, i) => ({
    id: newId(),
    kind: 'new_follower',
    text: `#${from + i}`,
    data: { i },
    createdAt: new Date().toISOString(),
    position: from + i,
  }));
}

/** The stream over an in-memory store, recording what it writes and every read of the store. */
function streamOver(store: StreamedNotification[], startAfter = 0) {
  const written: string[] = [];
  const reads: number[] = [];
  let gate: Promise<void> = Promise.resolve();
  const stream = new NotificationStream({
    startAfter: async () => startAfter,
    loadAfter: async (position, limit) => {
      reads.push(position);
      await gate;
      return store
        .filter((n) => n.position > position)
        .sort((a, b) => a.position - b.position)
        .slice(0, limit);
    },
    write: (chunk) => written.push(chunk),
  });
  const ids = () => written.map((chunk) => /^id: (.*)$/m.exec(chunk)?.[1]);
  return {
    stream,
    written,
    reads,
    ids,
    /** Holds the store's answers until the returned function is called. */
    holdReads: () => {
      let release!: () => void;
      gate = new Promise((r) => (release = r));
      return () => {
        gate = Promise.resolve();
        release();
      };
    },
  };
}

describe('NotificationStream (resume by stream position)', () => {
  it('sends the stored notifications after its start position, oldest first, `id:` the position and the list item as data', async () => {
    const all = notifications(5);
    const s = streamOver(all, 2);
    await s.stream.start();
    expect(s.ids()).to.deep.equal(['3', '4', '5']);
    const { position: _p, ...item } = all[2]!;
    expect(s.written[0]).to.equal(`id: 3\nevent: notification\ndata: ${JSON.stringify(item)}\n\n`);
  });

  it('on a wake-up, sends what was stored since the last position sent, each position once', async () => {
    const store = notifications(2);
    const s = streamOver(store, 2);
    await s.stream.start();
    expect(s.ids()).to.deep.equal([]);
    store.push(...notifications(2, 3));
    await s.stream.wake();
    await s.stream.wake();
    expect(s.ids()).to.deep.equal(['3', '4']);
    expect(s.reads).to.deep.equal([2, 2, 4]);
  });

  it('a wake-up that brings nothing stored sends nothing (a live message is a hint, never content)', async () => {
    const s = streamOver(notifications(3), 3);
    await s.stream.start();
    await s.stream.wake();
    expect(s.written).to.deep.equal([]);
  });

  it('wake-ups during a read share one further read, and nothing is sent twice or out of order', async () => {
    const store = notifications(2);
    const s = streamOver(store, 0);
    const release = s.holdReads();
    const started = s.stream.start();
    await new Promise((r) => setImmediate(r));
    store.push(...notifications(2, 3));
    const wakes = [s.stream.wake(), s.stream.wake(), s.stream.wake()];
    release();
    await Promise.all([started, ...wakes]);
    expect(s.ids()).to.deep.equal(['1', '2', '3', '4']);
    // The first read (held, and answering with all four), then one shared by the three wake-ups.
    expect(s.reads).to.deep.equal([0, 4]);
  });

  it(`reads a long backlog ${CATCH_UP_PAGE} at a time, from the last position sent`, async () => {
    const all = notifications(CATCH_UP_PAGE * 2 + 5);
    const s = streamOver(all, 1);
    await s.stream.start();
    expect(s.ids()).to.deep.equal(all.slice(1).map((n) => String(n.position)));
    expect(s.reads).to.deep.equal([1, CATCH_UP_PAGE + 1, CATCH_UP_PAGE * 2 + 1]);
  });

  it('a failed read fails that wake-up only; the next one reads from the same position', async () => {
    const store = notifications(2);
    let fail = true;
    const written: string[] = [];
    const stream = new NotificationStream({
      startAfter: async () => 0,
      loadAfter: async (position) => {
        if (fail) throw new Error('database is locked');
        return store.filter((n) => n.position > position);
      },
      write: (chunk) => written.push(chunk),
    });
    await stream.start().then(
      () => expect.fail('the read failed'),
      (err: Error) => expect(err.message).to.equal('database is locked'),
    );
    fail = false;
    await stream.wake();
    expect(written.map((c) => /^id: (.*)$/m.exec(c)?.[1])).to.deep.equal(['1', '2']);
  });

  it('sends nothing once stopped', async () => {
    const s = streamOver(notifications(2), 0);
    s.stream.stop();
    await s.stream.start();
    await s.stream.wake();
    expect(s.written).to.deep.equal([]);
  });
});
