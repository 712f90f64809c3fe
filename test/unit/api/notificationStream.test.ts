import { expect } from 'chai';
import { CATCH_UP_PAGE, NotificationStream } from '../../../src/api/notificationStream';
import type { Notification } from '../../../src/db/repositories/readModels';
import { newId } from '../../../src/domain/ids';

/** Notifications with increasing UUIDv7 ids, as the worker makes them. */
function notifications(n: number): Notification[] {
  return Array.from({ length: n }, (_, i) => ({ id: newId(), kind: 'new_follower', text: `#${i}`, data: { i }, createdAt: new Date().toISOString() }));
}

/** The stream over an in-memory store, recording what it writes and every read of the store. */
function streamOver(store: Notification[], lastEventId?: string, connectedAt?: string) {
  const written: string[] = [];
  const reads: string[] = [];
  let gate: Promise<void> = Promise.resolve();
  const stream = new NotificationStream({
    lastEventId,
    connectedAt,
    loadAfter: async (afterId, limit) => {
      reads.push(afterId);
      await gate;
      return store.filter((n) => n.id > afterId).sort((a, b) => (a.id < b.id ? -1 : 1)).slice(0, limit);
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
      return release;
    },
  };
}

describe('NotificationStream (resume and de-duplication)', () => {
  it('with no Last-Event-ID, reads nothing stored and sends live notifications as they come', async () => {
    const [a, b] = notifications(2) as [Notification, Notification];
    const s = streamOver([a, b]);
    await s.stream.start();
    expect(s.reads).to.deep.equal([]);
    s.stream.live(b);
    expect(s.ids()).to.deep.equal([b.id]);
    expect(s.written[0]).to.equal(`id: ${b.id}\nevent: notification\ndata: ${JSON.stringify(b)}\n\n`);
  });

  it('with Last-Event-ID, first sends the stored notifications after it, oldest first', async () => {
    const all = notifications(5);
    const s = streamOver(all, all[1]!.id);
    await s.stream.start();
    expect(s.ids()).to.deep.equal(all.slice(2).map((n) => n.id));
  });

  it('holds live notifications back while reading the store, then sends each id once', async () => {
    const all = notifications(4);
    const s = streamOver(all.slice(0, 3), all[0]!.id);
    const release = s.holdReads();
    const started = s.stream.start();
    // One of these is also in the store; one is newer than anything stored.
    s.stream.live(all[2]!);
    s.stream.live(all[3]!);
    expect(s.written, 'nothing is sent before the stored backlog').to.deep.equal([]);
    release();
    await started;
    expect(s.ids()).to.deep.equal([all[1]!.id, all[2]!.id, all[3]!.id]);
    s.stream.live(all[3]!);
    expect(s.ids(), 'a late duplicate is dropped').to.have.length(3);
  });

  it(`reads a long backlog ${CATCH_UP_PAGE} at a time, from the last id sent`, async () => {
    const all = notifications(CATCH_UP_PAGE * 2 + 5);
    const s = streamOver(all, all[0]!.id);
    await s.stream.start();
    expect(s.ids()).to.deep.equal(all.slice(1).map((n) => n.id));
    expect(s.reads).to.deep.equal([all[0]!.id, all[CATCH_UP_PAGE]!.id, all[CATCH_UP_PAGE * 2]!.id]);
  });

  it('on resync, reads the store after the newest id sent: what the live path missed', async () => {
    const all = notifications(4);
    const store = all.slice(0, 2);
    const s = streamOver(store);
    await s.stream.start();
    s.stream.live(all[0]!);
    s.stream.live(all[1]!);
    // The live path was down while these two were committed.
    store.push(all[2]!, all[3]!);
    await s.stream.resync();
    expect(s.ids()).to.deep.equal(all.map((n) => n.id));
    expect(s.reads).to.deep.equal([all[1]!.id]);
  });

  it('on resync before anything was sent, reads from when the client connected', async () => {
    const connectedAt = newId();
    const after = notifications(1);
    const s = streamOver([...after], undefined, connectedAt);
    await s.stream.start();
    await s.stream.resync();
    expect(s.reads).to.deep.equal([connectedAt]);
    expect(s.ids()).to.deep.equal([after[0]!.id]);
  });

  it('sends nothing once stopped', async () => {
    const all = notifications(2);
    const s = streamOver(all, all[0]!.id);
    s.stream.stop();
    await s.stream.start();
    s.stream.live(all[1]!);
    expect(s.written).to.deep.equal([]);
  });
});
