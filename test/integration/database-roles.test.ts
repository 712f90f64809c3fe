import crypto from 'node:crypto';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { type Config } from '../../src/config';
import { openDatabase, type Service } from '../../src/db/knex';
import { migrateAll, SERVICES, loadConfig } from '../../src/services';
import { PG_ADMIN_URL, TestSystem, TEST_DB, waitFor } from '../support/system';

/**
 * One PostgreSQL role per service (database.roles.*), on the real server:
 * `warren migrate` creates the roles and migrates each schema as its role,
 * the running API and workers connect as their roles, the API's role reads
 * the read models and cannot write them, and no worker's role can touch
 * another service's schema. Roles are cluster-wide: each run's are named
 * apart, and dropped afterwards (after the databases that hold their objects)
 * even when a test fails.
 */
const required = process.env.WARREN_REQUIRE_POSTGRES === '1';

function rolesFor(suffix: string): Record<Service, { username: string; password: string }> {
  // A password with quotes and a backslash: the server must take it as written.
  return Object.fromEntries(SERVICES.map((s) => [s, { username: `warren_${s}_${suffix}`, password: `p'w"\\${s}-${suffix}` }])) as Record<
    Service,
    { username: string; password: string }
  >;
}

async function dropRoles(roles: Record<Service, { username: string }>): Promise<void> {
  const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL, pool: { min: 0, max: 1 } });
  try {
    for (const { username } of Object.values(roles)) await admin.raw('DROP ROLE IF EXISTS ??', [username]).catch(() => undefined);
  } finally {
    await admin.destroy();
  }
}

/** The error a statement fails with, or '' when it succeeds. */
async function refusal(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}

async function currentUser(db: Knex): Promise<string> {
  return ((await db.raw('SELECT current_user AS name')) as { rows: { name: string }[] }).rows[0]!.name;
}

/** Owner of each schema of the services, and of every table, view and sequence in them. */
async function owners(db: Knex): Promise<Record<string, string>> {
  const res = (await db.raw(
    `SELECT n.nspname AS schema, NULL AS name, pg_get_userbyid(n.nspowner) AS owner FROM pg_namespace n WHERE n.nspname = ANY(?)
     UNION ALL
     SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ANY(?) AND c.relkind IN ('r', 'p', 'v', 'm', 'S')`,
    [SERVICES, SERVICES],
  )) as { rows: { schema: string; name: string | null; owner: string }[] };
  return Object.fromEntries(res.rows.map((r) => [r.name ? `${r.schema}.${r.name}` : r.schema, r.owner]));
}

function expectOwnedByRoles(found: Record<string, string>, roles: Record<Service, { username: string }>): void {
  for (const service of SERVICES) {
    expect(Object.keys(found), service).to.include(service);
    expect(
      Object.keys(found).filter((k) => k.startsWith(`${service}.`)),
      service,
    ).to.have.length.above(2);
  }
  const wrong = Object.entries(found).filter(([name, owner]) => owner !== roles[name.split('.')[0] as Service].username);
  expect(wrong, 'objects not owned by their service role').to.deep.equal([]);
}

describe(`one PostgreSQL role per service (${TEST_DB})`, function () {
  this.timeout(120_000);

  before(async function () {
    if (TEST_DB !== 'postgres') return this.skip(); // runs in the PostgreSQL pass (WARREN_TEST_DB=postgres)
    const probe = knexFactory({ client: 'pg', connection: PG_ADMIN_URL, pool: { min: 0, max: 1 } });
    const reachable = await probe.raw('SELECT 1').then(
      () => true,
      (err: Error) => (required ? Promise.reject(err) : false),
    );
    await probe.destroy();
    if (!reachable) this.skip();
  });

  describe('a system migrated and run with service roles', function () {
    const suffix = crypto.randomBytes(4).toString('hex');
    const roles = rolesFor(suffix);
    const sys = new TestSystem();
    const opened: Knex[] = [];
    const open = (service: Service, config: Config = sys.config) => {
      const db = openDatabase(config, service, service === 'api' ? { attachReadModels: true } : {});
      opened.push(db);
      return db;
    };

    before(async function () {
      await sys.setUp({ database: { roles } });
      await sys.startApi();
      await sys.startWorker('analytics');
      await sys.startWorker('notifications');
      await sys.startWorker('timeline');
    });
    after(async function () {
      await Promise.all(opened.map((db) => db.destroy().catch(() => undefined)));
      await sys.tearDown();
      await dropRoles(roles);
    });

    it('gives each service its schema, and every table in it, owned by its role', async function () {
      const owner = knexFactory({ client: 'pg', connection: sys.config.database.url, pool: { min: 0, max: 1 } });
      opened.push(owner);
      expectOwnedByRoles(await owners(owner), roles);
    });

    it('runs the API and every worker under their roles: a tweet and a follow reach the read models and the timeline the API serves', async function () {
      const ada = await sys.createUser(`ada_${suffix}`);
      const bob = await sys.createUser(`bob_${suffix}`);
      expect((await sys.request('POST', '/tweets', { token: ada.token, body: { text: 'roles #hold' } })).status).to.equal(201);
      expect((await sys.request('PUT', `/users/${bob.id}/following/${ada.id}`, { token: bob.token })).status).to.equal(204);
      await waitFor('analytics to count the tweet', async () => (await sys.request('GET', `/analytics/users/${ada.id}`)).json?.tweetCount === 1, 30_000);
      await waitFor(
        'the follow notification',
        async () => (await sys.request('GET', `/users/${ada.id}/notifications`, { token: ada.token })).json?.items?.length === 1,
        30_000,
      );
      await waitFor(
        'the tweet in the follower timeline',
        async () => (await sys.request('GET', `/users/${bob.id}/timeline`)).json?.items?.length === 1,
        30_000,
      );
      const admin = knexFactory({ client: 'pg', connection: sys.config.database.url, pool: { min: 0, max: 1 } });
      opened.push(admin);
      const connected = (
        (await admin.raw('SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database()')) as { rows: { usename: string }[] }
      ).rows.map((r) => r.usename);
      // The processes this test runs: every service but the console.
      expect(connected).to.include.members(SERVICES.filter((s) => s !== 'console').map((s) => roles[s].username));
    });

    it("connects each service as its own role, and refuses every other service's schema to a worker's role", async function () {
      for (const service of SERVICES) expect(await currentUser(open(service)), service).to.equal(roles[service].username);
      const analytics = open('analytics');
      const notifications = open('notifications');
      expect(await refusal(() => analytics.withSchema('api').from('users').select())).to.match(/permission denied for schema api/);
      expect(await refusal(() => analytics.withSchema('api').from('outbox').insert({ message_id: 'x' }))).to.match(/permission denied for schema api/);
      expect(await refusal(() => analytics.withSchema('notifications').from('notifications').select())).to.match(/permission denied for schema notifications/);
      expect(await refusal(() => notifications.withSchema('analytics').from('user_stats').select())).to.match(/permission denied for schema analytics/);
      expect(await refusal(() => notifications.withSchema('api').from('tokens').select())).to.match(/permission denied for schema api/);
      // Its own tables, read and written as usual.
      expect(await refusal(() => analytics('hashtags').insert({ tag: `own_${suffix}`, count: 1 }))).to.equal('');
    });

    it("lets the API's role read the read models, those of later migrations too, and write none of them", async function () {
      const api = open('api');
      expect(await refusal(() => api.withSchema('analytics').from('user_stats').select())).to.equal('');
      expect(await refusal(() => api.withSchema('notifications').from('notifications').select())).to.equal('');
      expect(
        await refusal(() =>
          api
            .withSchema('analytics')
            .from('hashtags')
            .insert({ tag: `forged_${suffix}`, count: 9 }),
        ),
      ).to.match(/permission denied for table hashtags/);
      expect(await refusal(() => api.withSchema('analytics').from('user_stats').update({ tweet_count: 1000 }))).to.match(
        /permission denied for table user_stats/,
      );
      expect(await refusal(() => api.withSchema('notifications').from('notifications').del())).to.match(/permission denied for table notifications/);
      expect(await refusal(() => api.raw('CREATE TABLE analytics.planted (x int)'))).to.match(/permission denied for schema analytics/);
      // A table a later analytics migration creates (as the analytics role) is readable by the API at once.
      const asAnalytics = openDatabase(sys.config, 'analytics', { asRole: roles.analytics.username });
      opened.push(asAnalytics);
      await asAnalytics.schema.createTable('later_read_model', (t) => t.integer('n'));
      await asAnalytics('later_read_model').insert({ n: 7 });
      expect(await api.withSchema('analytics').from('later_read_model').select('n')).to.deep.equal([{ n: 7 }]);
      expect(await refusal(() => api.withSchema('analytics').from('later_read_model').insert({ n: 8 }))).to.match(/permission denied/);
    });

    it('migrates again as a no-op that keeps the roles, their ownership and the grants', async function () {
      const lines: string[] = [];
      await migrateAll(sys.config, (line) => lines.push(line));
      expect(lines).to.deep.equal(SERVICES.map((s) => `${s}: up to date`));
      const owner = knexFactory({ client: 'pg', connection: sys.config.database.url, pool: { min: 0, max: 1 } });
      opened.push(owner);
      expectOwnedByRoles(await owners(owner), roles);
      expect(await refusal(() => open('api').withSchema('analytics').from('user_stats').select())).to.equal('');
    });
  });

  describe('a database migrated before roles were configured', function () {
    const suffix = crypto.randomBytes(4).toString('hex');
    const roles = rolesFor(suffix);
    const database = `warren_roles_${suffix}`;
    const handles: Knex[] = [];
    let url = '';
    const configWith = (extra: object) =>
      loadConfig({ NODE_ENV: 'test', WARREN_DATABASE_CLIENT: 'postgres', WARREN_DATABASE_URL: url, WARREN_CONFIG: JSON.stringify(extra) });

    before(async function () {
      const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL, pool: { min: 0, max: 1 } });
      await admin.raw('CREATE DATABASE ??', [database]);
      await admin.destroy();
      const u = new URL(PG_ADMIN_URL);
      u.pathname = `/${database}`;
      url = u.toString();
    });
    after(async function () {
      await Promise.all(handles.map((db) => db.destroy().catch(() => undefined)));
      const admin = knexFactory({ client: 'pg', connection: PG_ADMIN_URL, pool: { min: 0, max: 1 } });
      await admin.raw('DROP DATABASE IF EXISTS ?? WITH (FORCE)', [database]).catch(() => undefined);
      await admin.destroy();
      await dropRoles(roles);
    });

    it('hands every schema and table to its role at the next migrate, keeping the rows', async function () {
      const single = configWith({});
      await migrateAll(single);
      const asOwner = openDatabase(single, 'analytics');
      handles.push(asOwner);
      expect(await currentUser(asOwner)).to.equal(new URL(url).username);
      await asOwner('hashtags').insert({ tag: 'kept', count: 3 });

      const withRoles = configWith({ database: { roles } });
      await migrateAll(withRoles);
      expectOwnedByRoles(await owners(asOwner), roles);
      const analytics = openDatabase(withRoles, 'analytics');
      const api = openDatabase(withRoles, 'api', { attachReadModels: true });
      const notifications = openDatabase(withRoles, 'notifications');
      handles.push(analytics, api, notifications);
      expect(await analytics('hashtags').select('tag', 'count')).to.deep.equal([{ tag: 'kept', count: 3 }]);
      expect(await api.withSchema('analytics').from('hashtags').select('tag')).to.deep.equal([{ tag: 'kept' }]);
      expect(await refusal(() => notifications.withSchema('analytics').from('hashtags').select())).to.match(/permission denied for schema analytics/);
      expect(await refusal(() => analytics.withSchema('api').from('users').select())).to.match(/permission denied for schema api/);
    });
  });
});
