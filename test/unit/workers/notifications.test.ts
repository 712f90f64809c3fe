import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import pino from 'pino';
import { openDatabase } from '../../../src/db/knex';
import { migrateService, loadConfig } from '../../../src/services';
import { isUuidV7, newId } from '../../../src/domain/ids';
import type { WarrenMessage } from '../../../src/domain/messages';
import type { LiveNotification } from '../../../src/domain/liveNotification';
import { STREAM_COUNTERS_TABLE } from '../../../src/db/migrations/notifications';
import { notificationsWorker, notificationsWorkerWith } from '../../../src/workers/notifications';
import type { HandlerContext } from '../../../src/consume/handler';
import { QueueConsumer } from '../../../src/consume/consumer';
import type { ConfirmPublisher } from '../../../src/broker/publisher';
import { fakeConnection } from '../../support/fakeAmqp';
import type { ConsumeMessage } from 'amqplib';

const ALICE = newId();
const BOB = newId();
const NOW = '2026-11-25T12:00:00.000Z';
const ctx: HandlerContext = { log: pino({ level: 'silent' }), now: () => new Date(NOW), afterCommit: () => undefined, signal: new AbortController().signal };

function userUpdated(changes: Record<string, { from: unknown; to: unknown }>): WarrenMessage<'user.updated'> {
  return { type: 'user.updated', messageId: newId(), schemaVersion: '1.0', body: { userId: ALICE, changes, updatedAt: '2026-11-25T11:59:00.000Z' } };
}

function userFollowed(followerHandle?: string): WarrenMessage<'user.followed'> {
  return {
    type: 'user.followed',
    messageId: newId(),
    schemaVersion: '1.0',
    body: { followerId: BOB, followeeId: ALICE, at: '2026-11-25T11:58:00.000Z', ...(followerHandle ? { followerHandle } : {}) },
  };
}

interface NotificationRow {
  id: string;
  user_id: string;
  kind: string;
  text: string;
  data: string;
  message_id: string;
  created_at: string;
}

describe('notificationsWorker', () => {
  let dir: string;
  let db: Knex;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-notifications-'));
    const config = loadConfig({ WARREN_DATABASE_DIR: dir });
    db = openDatabase(config, 'notifications');
    await migrateService(db, 'notifications', config);
  });
  after(async () => {
    await db?.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    await db('notifications').delete();
    await db(STREAM_COUNTERS_TABLE).delete();
  });

  const handle = (message: WarrenMessage<'user.updated' | 'user.followed'>) => db.transaction((tx) => notificationsWorker.handle(message, tx, ctx));
  const notifications = (): Promise<NotificationRow[]> => db('notifications').select('*').orderBy('id');

  it('subscribes to user events and leaves user.created to be acked and ignored', () => {
    expect(notificationsWorker.name).to.equal('notifications');
    expect(notificationsWorker.queue).to.equal('notifications.user-events');
    expect(notificationsWorker.bindings).to.deep.equal([{ exchange: 'user.events', routingKey: '' }]);
    expect(notificationsWorker.handles).to.deep.equal(['user.updated', 'user.followed']);
  });

  it('acks a user.unfollowed (schema 1.1) as ignored, notifying nobody', async () => {
    const { connection, setConnected } = fakeConnection();
    setConnected(false);
    const publisher = { publish: async () => undefined, isReady: () => true } as unknown as ConfirmPublisher;
    const consumer = new QueueConsumer({
      connection,
      publisher,
      db,
      worker: notificationsWorker,
      prefetch: 1,
      handlerTimeoutMs: 1000,
      maxAttempts: 5,
      steps: [],
      log: ctx.log,
    });
    try {
      const body = { followerId: BOB, followeeId: ALICE, at: NOW };
      const msg = {
        fields: { exchange: 'user.events', routingKey: 'user.unfollowed', deliveryTag: 1, redelivered: false, consumerTag: 'c' },
        properties: { messageId: newId(), type: 'user.unfollowed', contentType: 'application/json', headers: { 'x-schema-version': '1.1' } },
        content: Buffer.from(JSON.stringify(body)),
      } as unknown as ConsumeMessage;
      expect(await consumer.process(msg)).to.equal('ignored');
      expect(consumer.counts).to.include({ ignored: 1, parked: 0, retried: 0 });
      expect(await notifications()).to.have.length(0);
    } finally {
      await consumer.stop(100);
    }
  });

  it('tells a user what changed in their profile, in one notification', async () => {
    const changes = { displayName: { from: 'A', to: 'B' }, bio: { from: null, to: 'Likes rabbits' } };
    const message = userUpdated(changes);
    await handle(message);
    const rows = await notifications();
    expect(rows).to.have.length(1);
    const [row] = rows as [NotificationRow];
    expect(isUuidV7(row.id)).to.equal(true);
    expect(row).to.deep.include({
      user_id: ALICE,
      kind: 'profile_updated',
      text: 'Your displayName changed from "A" to "B"; your bio changed',
      message_id: message.messageId,
      created_at: NOW,
    });
    expect(JSON.parse(row.data)).to.deep.equal({ changes, updatedAt: '2026-11-25T11:59:00.000Z' });
  });

  it('names a changed handle with its old and new value, and summarises a long value', async () => {
    await handle(userUpdated({ handle: { from: 'alice', to: 'alice_b' }, displayName: { from: 'Alice', to: 'A'.repeat(41) } }));
    const [row] = await notifications();
    expect(row?.text).to.equal('Your handle changed from "alice" to "alice_b"; your displayName changed');
  });

  it('creates nothing for an update without changes', async () => {
    await handle(userUpdated({}));
    await handle(userUpdated({ displayName: { from: 'Same', to: 'Same' } }));
    expect(await notifications()).to.deep.equal([]);
  });

  it('tells the followee who followed them, by handle', async () => {
    const message = userFollowed('bob');
    await handle(message);
    const rows = await notifications();
    expect(rows).to.have.length(1);
    expect(rows[0]).to.deep.include({ user_id: ALICE, kind: 'new_follower', text: '@bob followed you', message_id: message.messageId, created_at: NOW });
    expect(JSON.parse(rows[0]!.data)).to.deep.equal({ followerId: BOB, followerHandle: 'bob', at: '2026-11-25T11:58:00.000Z' });
  });

  it('names the follower by id when the event carries no handle', async () => {
    await handle(userFollowed());
    const [row] = await notifications();
    expect(row).to.deep.include({ user_id: ALICE, text: `${BOB} followed you` });
  });

  it('writes only inside the transaction it is given', async () => {
    const err = await db
      .transaction(async (tx) => {
        await notificationsWorker.handle(userFollowed('bob'), tx, ctx);
        throw new Error('abort');
      })
      .catch((e: unknown) => e);
    expect(err).to.have.property('message', 'abort');
    expect(await notifications()).to.deep.equal([]);
  });

  it("numbers each user's notifications 1, 2, 3 ... in the transaction that stores them; a rolled-back one takes no number", async () => {
    await handle(userFollowed('bob'));
    await db
      .transaction(async (tx) => {
        await notificationsWorker.handle(userFollowed('carol'), tx, ctx);
        throw new Error('abort');
      })
      .catch(() => undefined);
    await handle(userUpdated({ displayName: { from: 'A', to: 'B' } }));
    // Another user's stream counts on its own.
    await handle({ ...userFollowed('alice'), body: { followerId: ALICE, followeeId: BOB, at: '2026-11-25T11:58:00.000Z', followerHandle: 'alice' } });
    await db.transaction(async (tx) => {
      // Two in one transaction (a batch) take consecutive numbers.
      await notificationsWorker.handle(userFollowed('dave'), tx, ctx);
      await notificationsWorker.handle(userFollowed('erin'), tx, ctx);
    });
    const rows = (await db('notifications').select('user_id', 'text', 'seq').orderBy(['user_id', 'seq'])) as { user_id: string; text: string; seq: number }[];
    expect(rows.filter((r) => r.user_id === ALICE).map((r) => [Number(r.seq), r.text])).to.deep.equal([
      [1, '@bob followed you'],
      [2, 'Your displayName changed from "A" to "B"'],
      [3, '@dave followed you'],
      [4, '@erin followed you'],
    ]);
    expect(rows.filter((r) => r.user_id === BOB).map((r) => Number(r.seq))).to.deep.equal([1]);
  });

  describe('with a live sink', () => {
    /** A transaction that runs its after-commit callbacks once committed, as the consumer does. */
    async function handleLive(message: WarrenMessage<'user.updated' | 'user.followed'>, abort = false) {
      const sent: LiveNotification[] = [];
      const causes: unknown[] = [];
      const worker = notificationsWorkerWith({
        publish: (n, cause) => {
          sent.push(n);
          causes.push(cause);
        },
      });
      const callbacks: (() => void | Promise<void>)[] = [];
      const liveCtx: HandlerContext = { ...ctx, afterCommit: (fn) => callbacks.push(fn) };
      const committed = await db
        .transaction(async (tx) => {
          await worker.handle(message, tx, liveCtx);
          expect(sent, 'nothing is sent before the commit').to.deep.equal([]);
          if (abort) throw new Error('abort');
        })
        .then(
          () => true,
          () => false,
        );
      if (committed) for (const fn of callbacks) await fn();
      return Object.assign(sent, { causes });
    }

    it('sends the notification it stored, once committed', async () => {
      const sent = await handleLive(userFollowed('bob'));
      const [row] = await notifications();
      expect(sent).to.deep.equal([
        { id: row!.id, userId: ALICE, kind: 'new_follower', text: '@bob followed you', data: JSON.parse(row!.data), createdAt: NOW },
      ]);
    });

    it("carries the request and trace of the message it came from, so the live copy's logs join the rest", async () => {
      const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      const sent = await handleLive({ ...userFollowed('bob'), correlationId: 'req-follow-1', traceparent });
      expect(sent.causes).to.deep.equal([{ correlationId: 'req-follow-1', traceparent }]);
    });

    it('sends nothing when the transaction rolls back', async () => {
      expect(await handleLive(userFollowed('bob'), true)).to.deep.equal([]);
      expect(await notifications()).to.deep.equal([]);
    });
  });
});
