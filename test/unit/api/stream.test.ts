import net from 'node:net';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { openDatabase } from '../../../src/db/knex';
import { newId } from '../../../src/domain/ids';
import type { LiveNotification } from '../../../src/domain/liveNotification';
import { SseClient } from '../../support/sse';
import { createUser, startApi, type ApiHarness } from './harness';

describe('api: GET /users/:id/notifications/stream', () => {
  let api: ApiHarness;
  let store: Knex;
  let ada: { id: string; token: string };
  const clients: SseClient[] = [];

  /** Writes a notification as the notifications worker does, and returns it as the live path carries it. */
  async function stored(userId: string, text: string): Promise<LiveNotification> {
    const n: LiveNotification = { id: newId(), userId, kind: 'new_follower', text, data: { text }, createdAt: new Date().toISOString() };
    await store('notifications').insert({ id: n.id, user_id: userId, kind: n.kind, text, data: JSON.stringify(n.data), message_id: newId(), created_at: n.createdAt });
    return n;
  }

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

    const forBob = await stored(bob.id, 'not for ada');
    const forAda = await stored(ada.id, 'for ada');
    api.hub.publish(forBob);
    api.hub.publish(forAda);
    await client.waitUntil('ada’s notification', (c) => c.events.length >= 1);
    const [event] = client.events;
    expect(event).to.include({ id: forAda.id, event: 'notification' });
    expect(JSON.parse(event!.data)).to.deep.equal({ id: forAda.id, kind: 'new_follower', text: 'for ada', data: { text: 'for ada' }, createdAt: forAda.createdAt });
    await new Promise((r) => setTimeout(r, 100));
    expect(client.notifications().map((n) => n.text)).to.deep.equal(['for ada']);
  });

  it('resumes after Last-Event-ID from the store, then live, without duplicates', async () => {
    const first = await stored(ada.id, 'one');
    const missed = [await stored(ada.id, 'two'), await stored(ada.id, 'three')];
    const client = await open(ada.id, ada.token, { 'last-event-id': first.id });
    await client.waitUntil('the two missed notifications', (c) => c.events.length >= 2);
    // The live path delivers one of them again, and then a new one.
    api.hub.publish(missed[1]!);
    const fresh = await stored(ada.id, 'four');
    api.hub.publish(fresh);
    await client.waitUntil('the new one', (c) => c.events.length >= 3);
    await new Promise((r) => setTimeout(r, 100));
    expect(client.notifications().map((n) => n.text)).to.deep.equal(['two', 'three', 'four']);
    expect(client.events.map((e) => e.id)).to.deep.equal([...missed.map((n) => n.id), fresh.id]);
  });

  it('takes the resume point from ?lastEventId= too (an EventSource cannot set headers on its first request)', async () => {
    const first = await stored(ada.id, 'one');
    await stored(ada.id, 'two');
    const client = await open(ada.id, ada.token, {}, `?lastEventId=${first.id}`);
    await client.waitUntil('the missed one', (c) => c.events.length >= 1);
    expect(client.notifications().map((n) => n.text)).to.deep.equal(['two']);
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
    expect(bad.body.error.details).to.deep.equal([{ path: 'last-event-id', message: 'must be a notification id' }]);
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
      api.hub.publish({ id: newId(), userId: ada.id, kind: 'new_follower', text: big, data: null, createdAt: new Date().toISOString() });
      await new Promise((r) => setImmediate(r));
    }
    expect(api.hub.size(), 'the stream was cut').to.equal(0);
    socket.destroy();
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
