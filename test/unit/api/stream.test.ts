import net from 'node:net';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { openDatabase } from '../../../src/db/knex';
import type { Config } from '../../../src/config';
import { newId } from '../../../src/domain/ids';
import { nextStreamPosition } from '../../../src/workers/notifications';
import { SseClient } from '../../support/sse';
import { createUser, startApi, type ApiHarness } from './harness';

interface Stored {
  id: string;
  userId: string;
  kind: string;
  text: string;
  data: unknown;
  createdAt: string;
  position: number;
}

describe('api: GET /users/:id/notifications/stream', () => {
  let api: ApiHarness;
  let store: Knex;
  let ada: { id: string; token: string };
  const clients: SseClient[] = [];

  /** Writes a notification as the notifications worker does, its stream position taken in the same transaction. */
  async function stored(userId: string, text: string, data: unknown = { text }): Promise<Stored> {
    return store.transaction(async (tx) => {
      const position = await nextStreamPosition(tx, userId);
      const n = { id: newId(), userId, kind: 'new_follower', text, data, createdAt: new Date().toISOString(), position };
      await tx('notifications').insert({
        id: n.id,
        user_id: userId,
        kind: n.kind,
        text,
        data: JSON.stringify(data),
        message_id: newId(),
        created_at: n.createdAt,
        seq: position,
      });
      return n;
    });
  }

  const restartApi = async (overrides: Partial<Config>) => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await store.destroy();
    await api.close();
    api = await startApi(overrides);
    store = openDatabase(api.config, 'notifications');
    ada = await createUser(api);
  };

  async function open(userId: string, token: string, headers: Record<string, string> = {}, query = ''): Promise<SseClient> {
    const client = await SseClient.open(`${api.url}/users/${userId}/notifications/stream${query}`, { authorization: `Bearer ${token}`, ...headers });
    clients.push(client);
    return client;
  }

  beforeEach(async () => {
    api = await startApi();
    store = openDatabase(api.config, 'notifications');
    ada = await createUser(api);
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await store.destroy();
    await api.close();
  });

  it('answers text/event-stream, then pushes live notifications of that user only', async () => {
    const bob = await createUser(api);
    const client = await open(ada.id, ada.token);
    expect(client.status).to.equal(200);
    expect(client.headers.get('content-type')).to.match(/^text\/event-stream/);
    expect(client.headers.get('cache-control')).to.equal('no-store');
    expect(client.headers.get('x-request-id')).to.be.a('string');
    await client.waitUntil('the connected comment', (c) => c.comments.includes('connected'));
    expect(client.retryMs).to.equal(2000);
    expect(api.hub.size()).to.equal(1);

    await stored(bob.id, 'not for ada');
    const forAda = await stored(ada.id, 'for ada');
    api.hub.wake(bob.id);
    api.hub.wake(ada.id);
    await client.waitUntil('ada’s notification', (c) => c.events.length >= 1);
    const [event] = client.events;
    // id: is the notification's position in ada's stream; the data is the list item, with its id.
    expect(event).to.include({ id: '1', event: 'notification' });
    expect(JSON.parse(event!.data)).to.deep.equal({
      id: forAda.id,
      kind: 'new_follower',
      text: 'for ada',
      data: { text: 'for ada' },
      createdAt: forAda.createdAt,
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(client.notifications().map((n) => n.text)).to.deep.equal(['for ada']);
  });

  it('resumes after Last-Event-ID from the store, then what is stored later, without duplicates', async () => {
    const first = await stored(ada.id, 'one');
    const missed = [await stored(ada.id, 'two'), await stored(ada.id, 'three')];
    const client = await open(ada.id, ada.token, { 'last-event-id': String(first.position) });
    await client.waitUntil('the two missed notifications', (c) => c.events.length >= 2);
    // A second wake-up for what was already sent, then a new one.
    api.hub.wake(ada.id);
    const fresh = await stored(ada.id, 'four');
    api.hub.wake(ada.id);
    await client.waitUntil('the new one', (c) => c.events.length >= 3);
    await new Promise((r) => setTimeout(r, 100));
    expect(client.notifications().map((n) => n.text)).to.deep.equal(['two', 'three', 'four']);
    expect(client.notifications().map((n) => n.id)).to.deep.equal([...missed.map((n) => n.id), fresh.id]);
    expect(client.events.map((e) => e.id)).to.deep.equal(['2', '3', '4']);
  });

  it('takes the resume point from ?lastEventId= too (an EventSource cannot set headers on its first request)', async () => {
    await stored(ada.id, 'one');
    await stored(ada.id, 'two');
    const client = await open(ada.id, ada.token, {}, '?lastEventId=1');
    await client.waitUntil('the missed one', (c) => c.events.length >= 1);
    expect(client.notifications().map((n) => n.text)).to.deep.equal(['two']);
  });

  it('still resumes after a notification id, as streams sent before they sent positions', async () => {
    const first = await stored(ada.id, 'one');
    await stored(ada.id, 'two');
    const client = await open(ada.id, ada.token, { 'last-event-id': first.id });
    await client.waitUntil('the missed one', (c) => c.events.length >= 1);
    expect(client.notifications().map((n) => n.text)).to.deep.equal(['two']);
    expect(client.events[0]!.id).to.equal('2');
  });

  it('takes a Last-Event-ID past everything stored as the newest, so a made-up one skips nothing stored later', async () => {
    await stored(ada.id, 'one');
    const client = await open(ada.id, ada.token, { 'last-event-id': '999999' });
    await client.waitUntil('connected', (c) => c.comments.includes('connected'));
    await new Promise((r) => setTimeout(r, 100));
    await stored(ada.id, 'two');
    api.hub.wake(ada.id);
    await client.waitUntil('the next one stored', (c) => c.events.length >= 1);
    expect(client.notifications().map((n) => n.text)).to.deep.equal(['two']);
    expect(client.events[0]!.id).to.equal('2');
  });

  it('sends only what is stored: a wake-up with nothing new sends nothing, and a lost live message is made up by the heartbeat', async () => {
    const client = await open(ada.id, ada.token);
    await client.waitUntil('connected', (c) => c.comments.includes('connected'));
    api.hub.wake(ada.id);
    await new Promise((r) => setTimeout(r, 300));
    expect(client.events).to.deep.equal([]);
    // Stored with no live message at all: the next heartbeat (200 ms here) reads it.
    await stored(ada.id, 'no live message');
    await client.waitUntil('the heartbeat to bring it', (c) => c.events.length >= 1, 2000);
    expect(client.notifications().map((n) => n.text)).to.deep.equal(['no live message']);
  });

  it('sends heartbeat comments while idle', async () => {
    const client = await open(ada.id, ada.token);
    await client.waitUntil('two heartbeats', (c) => c.comments.filter((x) => x === 'heartbeat').length >= 2, 2000);
  });

  it('ends the stream when its token is revoked', async () => {
    const client = await open(ada.id, ada.token);
    await client.waitUntil('connected', (c) => c.comments.includes('connected'));
    expect((await api.request('DELETE', `/users/${ada.id}/tokens/current`, { token: ada.token })).status).to.equal(204);
    await client.ended;
    expect(client.comments).to.include('token revoked or expired');
    expect((await api.request('GET', `/users/${ada.id}/notifications/stream`, { token: ada.token })).status).to.equal(401);
  });

  it('refuses other users, missing tokens and a Last-Event-ID that is not an id', async () => {
    const bob = await createUser(api);
    expect((await api.request('GET', `/users/${ada.id}/notifications/stream`)).status).to.equal(401);
    expect((await api.request('GET', `/users/${ada.id}/notifications/stream`, { token: bob.token })).status).to.equal(403);
    const bad = await api.request('GET', `/users/${ada.id}/notifications/stream`, { token: ada.token, headers: { 'last-event-id': 'nope' } });
    expect(bad.status).to.equal(400);
    expect(bad.body.error.details).to.deep.equal([{ path: 'last-event-id', message: 'must be the id of an event this stream sent' }]);
    const badQuery = await api.request('GET', `/users/${ada.id}/notifications/stream?lastEventId=-1`, { token: ada.token });
    expect(badQuery.body.error.details).to.deep.equal([{ path: 'lastEventId', message: 'must be the id of an event this stream sent' }]);
    expect((await api.request('GET', `/users/${ada.id}/notifications/stream?x=1`, { token: ada.token })).status).to.equal(400);
    expect(api.hub.size()).to.equal(0);
  });

  it('forgets a client that disconnects', async () => {
    const client = await open(ada.id, ada.token);
    await client.waitUntil('the connected comment', (c) => c.comments.includes('connected'));
    expect(api.hub.size()).to.equal(1);
    await client.close();
    const deadline = Date.now() + 2000;
    while (api.hub.size() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(api.hub.size()).to.equal(0);
  });

  it('cuts a client that stops reading instead of buffering for it without bound', async () => {
    const { port } = new URL(api.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    socket.write(`GET /users/${ada.id}/notifications/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ada.token}\r\n\r\n`);
    socket.pause(); // reads nothing from here on
    const deadline = Date.now() + 2000;
    while (api.hub.size() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(api.hub.size()).to.equal(1);
    const big = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 400 && api.hub.size() > 0; i++) {
      await stored(ada.id, big, null);
      api.hub.wake(ada.id);
    }
    // Each wake-up reads the store before it writes: the last ones may still be on their way.
    const cutBy = Date.now() + 5000;
    while (api.hub.size() > 0 && Date.now() < cutBy) await new Promise((r) => setTimeout(r, 20));
    expect(api.hub.size(), 'the stream was cut').to.equal(0);
    socket.destroy();
  });

  it('refuses a user past streams.maxPerUser (default 5) with 429 and Retry-After, and lets others in', async () => {
    const bob = await createUser(api);
    const five = await Promise.all(Array.from({ length: 5 }, () => open(ada.id, ada.token)));
    for (const c of five) expect(c.status).to.equal(200);
    expect(api.hub.sizeOf(ada.id)).to.equal(5);
    const refused = await api.request('GET', `/users/${ada.id}/notifications/stream`, { token: ada.token });
    expect(refused.status).to.equal(429);
    expect(refused.headers.get('retry-after')).to.equal('1');
    expect(refused.headers.get('x-request-id')).to.be.a('string');
    expect(refused.body.error.code).to.equal('too_many_streams');
    expect(refused.body.error.message).to.include('streams.maxPerUser');
    expect(api.hub.sizeOf(ada.id), 'the refused one took no slot').to.equal(5);
    expect((await open(bob.id, bob.token)).status).to.equal(200);
    // A closed stream frees its slot.
    await five[0]!.close();
    const deadline = Date.now() + 2000;
    while (api.hub.sizeOf(ada.id) > 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect((await open(ada.id, ada.token)).status).to.equal(200);
  });

  it('refuses anyone past streams.maxPerProcess with 429 and Retry-After', async () => {
    await restartApi({ streams: { maxPerUser: 5, maxPerProcess: 2 } });
    const bob = await createUser(api);
    const carol = await createUser(api);
    expect((await open(ada.id, ada.token)).status).to.equal(200);
    expect((await open(bob.id, bob.token)).status).to.equal(200);
    const refused = await api.request('GET', `/users/${carol.id}/notifications/stream`, { token: carol.token });
    expect(refused.status).to.equal(429);
    expect(refused.headers.get('retry-after')).to.equal('1');
    expect(refused.body.error).to.include({ code: 'streams_full' });
    expect(refused.body.error.message).to.include('streams.maxPerProcess');
    expect(api.hub.size()).to.equal(2);
  });

  it('ends every stream when the API shuts down, and refuses new ones with 503', async () => {
    const a = await open(ada.id, ada.token);
    const b = await open(ada.id, ada.token);
    await a.waitUntil('connected', (c) => c.comments.includes('connected'));
    await b.waitUntil('connected', (c) => c.comments.includes('connected'));
    api.hub.close();
    await Promise.all([a.ended, b.ended]);
    const refused = await api.request('GET', `/users/${ada.id}/notifications/stream`, { token: ada.token });
    expect(refused.status).to.equal(503);
    expect(refused.body.error.code).to.equal('shutting_down');
  });
});
