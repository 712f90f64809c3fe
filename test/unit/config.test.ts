import { expect } from 'chai';
import { ConfigError, envName, serviceAmqpUrl, vhostOf } from '../../src/config';
import { loadConfig } from '../../src/services';
import { sqliteRunner } from '../../src/db/knex';
import { serviceDatabaseUrl, serviceRole } from '../../src/db/roles';
import { analyticsWorker } from '../../src/workers/analytics';

describe('configuration', () => {
  it('loads the defaults and lets the environment override them', () => {
    const config = loadConfig({ WARREN_HTTP_PORT: '4100', WARREN_WORKER_PREFETCH: '50' });
    expect(config.http.port).to.equal(4100);
    expect(config.worker.prefetch).to.equal(50);
    expect(config.database.client).to.equal('sqlite');
  });

  it('names the key of a bad value in one line', () => {
    expect(() => loadConfig({ WARREN_HTTP_PORT: 'eighty' })).to.throw(ConfigError, /^config: http\.port \(WARREN_HTTP_PORT\): /);
    expect(() => loadConfig({ WARREN_AMQP_URL: 'http://nope' })).to.throw(ConfigError, /amqp\.url/);
    expect(() => loadConfig({ WARREN_DATABASE_CLIENT: 'postgres' })).to.throw(ConfigError, /database\.url/);
    expect(() => loadConfig({ WARREN_CONFIG: '{oops' })).to.throw(ConfigError, /WARREN_CONFIG/);
  });

  it('caps open notification streams at 5 per user by default, and refuses a cap that is not a positive integer', () => {
    expect(loadConfig({}).streams.maxPerUser).to.equal(5);
    expect(loadConfig({ WARREN_STREAMS_MAX_PER_PROCESS: '50' }).streams.maxPerProcess).to.equal(50);
    expect(() => loadConfig({ WARREN_STREAMS_MAX_PER_USER: '0' })).to.throw(ConfigError, /^config: streams\.maxPerUser \(WARREN_STREAMS_MAX_PER_USER\): /);
    expect(() => loadConfig({ WARREN_STREAMS_MAX_PER_PROCESS: 'lots' })).to.throw(
      ConfigError,
      /^config: streams\.maxPerProcess \(WARREN_STREAMS_MAX_PER_PROCESS\): /,
    );
  });

  it('caps active tokens per user at auth.maxTokens (20 by default), a positive integer', () => {
    expect(loadConfig({}).auth.maxTokens).to.equal(20);
    expect(loadConfig({ WARREN_AUTH_MAX_TOKENS: '3' }).auth.maxTokens).to.equal(3);
    for (const bad of ['0', '2.5', 'many']) {
      expect(() => loadConfig({ WARREN_AUTH_MAX_TOKENS: bad })).to.throw(ConfigError, /^config: auth\.maxTokens \(WARREN_AUTH_MAX_TOKENS\): /);
    }
  });

  it('chooses the SQLite driver, and names the key of an unknown one', () => {
    expect(loadConfig({}).database.sqliteDriver).to.equal('auto');
    // auto: node-sqlite3, with the API's writer on a thread of its own (better-sqlite3 there).
    expect(sqliteRunner('auto', {})).to.equal('sqlite3');
    expect(sqliteRunner('auto', { writer: true })).to.equal('thread');
    expect(sqliteRunner('sqlite3', { writer: true })).to.equal('sqlite3');
    expect(sqliteRunner('better-sqlite3', { writer: true })).to.equal('better-sqlite3');
    expect(loadConfig({ WARREN_DATABASE_SQLITE_DRIVER: 'better-sqlite3' }).database.sqliteDriver).to.equal('better-sqlite3');
    expect(loadConfig({ WARREN_DATABASE_SQLITE_DRIVER: 'sqlite3' }).database.sqliteDriver).to.equal('sqlite3');
    expect(() => loadConfig({ WARREN_DATABASE_SQLITE_DRIVER: 'sqlite4' })).to.throw(ConfigError, /database\.sqliteDriver \(WARREN_DATABASE_SQLITE_DRIVER\)/);
  });

  it('refuses a handler timeout that would reach the broker consumer timeout', () => {
    expect(() => loadConfig({ WARREN_WORKER_HANDLER_TIMEOUT_MS: String(30 * 60 * 1000) })).to.throw(/worker\.handlerTimeoutMs/);
  });

  it('refuses a supervisor that would kill a worker still stopping within its handler timeout', () => {
    expect(() => loadConfig({ WARREN_WORKER_HANDLER_TIMEOUT_MS: '60000' })).to.throw(
      ConfigError,
      /^config: supervisor\.stopTimeoutMs \(WARREN_SUPERVISOR_STOP_TIMEOUT_MS\): must be more than worker\.handlerTimeoutMs/,
    );
    expect(loadConfig({ WARREN_WORKER_HANDLER_TIMEOUT_MS: '60000', WARREN_SUPERVISOR_STOP_TIMEOUT_MS: '75000' }).supervisor.stopTimeoutMs).to.equal(75000);
  });

  it("refuses a batch deadline that leaves a batch's messages no time to run alone after it timed out", () => {
    expect(loadConfig({}).worker.batchDeadlineMs).to.equal(300_000);
    expect(() => loadConfig({ WARREN_WORKER_BATCH_DEADLINE_MS: '50000' })).to.throw(
      ConfigError,
      /^config: worker\.batchDeadlineMs \(WARREN_WORKER_BATCH_DEADLINE_MS\): must be at least 2 × worker\.handlerTimeoutMs \(60000\)/,
    );
    expect(() => loadConfig({ WARREN_WORKER_BATCH_DEADLINE_MS: String(25 * 60 * 1000) })).to.throw(ConfigError, /worker\.batchDeadlineMs/);
    expect(loadConfig({ WARREN_WORKER_BATCH_DEADLINE_MS: '60000' }).worker.batchDeadlineMs).to.equal(60_000);
  });

  it('refuses a relay claim timeout not above the publish timeout, naming relay.claimTimeoutMs', () => {
    const line = /^config: relay\.claimTimeoutMs \(WARREN_RELAY_CLAIM_TIMEOUT_MS\): must be more than relay\.publishTimeoutMs \(10000 ms\)/;
    expect(() => loadConfig({ WARREN_RELAY_CLAIM_TIMEOUT_MS: '10000' })).to.throw(ConfigError, line);
    expect(() => loadConfig({ WARREN_RELAY_CLAIM_TIMEOUT_MS: '5000' })).to.throw(ConfigError, line);
    expect(loadConfig({ WARREN_RELAY_CLAIM_TIMEOUT_MS: '10001' }).relay.claimTimeoutMs).to.equal(10001);
  });

  it('refuses a database.url that the sqlite client would ignore, naming database.client', () => {
    expect(() => loadConfig({ WARREN_DATABASE_URL: 'postgres://db/warren' })).to.throw(
      ConfigError,
      /^config: database\.client \(WARREN_DATABASE_CLIENT\): is sqlite, but database\.url is set/,
    );
    expect(loadConfig({ WARREN_DATABASE_CLIENT: 'postgres', WARREN_DATABASE_URL: 'postgres://db/warren' }).database.client).to.equal('postgres');
  });

  it('connects a service as its own PostgreSQL role when its password is set, else with database.url as it is', () => {
    const pg = { WARREN_DATABASE_CLIENT: 'postgres', WARREN_DATABASE_URL: 'postgres://owner:secret@db:5432/warren' };
    const single = loadConfig(pg);
    expect(serviceRole(single, 'api')).to.equal(undefined);
    expect(serviceDatabaseUrl(single, 'api')).to.equal('postgres://owner:secret@db:5432/warren');
    const own = loadConfig({ ...pg, WARREN_DATABASE_URL: 'postgres://db:5432/warren', WARREN_DATABASE_ROLES_ANALYTICS_PASSWORD: 'p@ss/w:rd' });
    expect(serviceRole(own, 'analytics')).to.equal('warren_analytics');
    const url = new URL(serviceDatabaseUrl(own, 'analytics'));
    expect([url.username, decodeURIComponent(url.password), url.host, url.pathname]).to.deep.equal(['warren_analytics', 'p@ss/w:rd', 'db:5432', '/warren']);
    expect(serviceDatabaseUrl(own, 'api')).to.equal('postgres://db:5432/warren');
    expect(serviceRole(loadConfig({}), 'api')).to.equal(undefined);
  });

  it('refuses service roles on SQLite, a role two services share and a name PostgreSQL would fold, in one line', () => {
    expect(() => loadConfig({ WARREN_DATABASE_ROLES_API_PASSWORD: 'x' })).to.throw(
      ConfigError,
      /^config: database\.roles\.api\.password \(WARREN_DATABASE_ROLES_API_PASSWORD\): is set, but database\.client is not postgres/,
    );
    const pg = {
      WARREN_DATABASE_CLIENT: 'postgres',
      WARREN_DATABASE_URL: 'postgres://db/warren',
      WARREN_DATABASE_ROLES_API_PASSWORD: 'x',
      WARREN_DATABASE_ROLES_NOTIFICATIONS_PASSWORD: 'y',
    };
    expect(() => loadConfig({ ...pg, WARREN_DATABASE_ROLES_NOTIFICATIONS_USERNAME: 'warren_api' })).to.throw(
      ConfigError,
      /^config: database\.roles\.notifications\.username \(WARREN_DATABASE_ROLES_NOTIFICATIONS_USERNAME\): is warren_api, the role of api too/,
    );
    expect(() => loadConfig({ ...pg, WARREN_DATABASE_ROLES_API_USERNAME: 'Warren-API' })).to.throw(
      ConfigError,
      /^config: database\.roles\.api\.username .*PostgreSQL role name/,
    );
    expect(loadConfig(pg).database.roles.notifications.username).to.equal('warren_notifications');
  });

  it("defaults each service's broker user and PostgreSQL role, and each worker queue's retry attempts, from the worker declarations", () => {
    const config = loadConfig({});
    expect(config.amqp.users).to.deep.equal({
      api: { username: 'warren-api', password: '' },
      analytics: { username: 'warren-analytics', password: '' },
      notifications: { username: 'warren-notifications', password: '' },
      timeline: { username: 'warren-timeline', password: '' },
      console: { username: 'warren-console', password: '' },
    });
    expect(Object.entries(config.database.roles).map(([service, role]) => [service, role.username])).to.deep.equal([
      ['api', 'warren_api'],
      ['analytics', 'warren_analytics'],
      ['notifications', 'warren_notifications'],
      ['timeline', 'warren_timeline'],
      ['console', 'warren_console'],
    ]);
    expect(config.retry.attempts).to.deep.equal({ 'analytics.tweets': 5, 'notifications.user-events': 5, 'timeline.events': 5 });
    // Declared keys are keys like any other: the environment and the files set them.
    expect(loadConfig({ WARREN_AMQP_USERS_NOTIFICATIONS_PASSWORD: 's' }).amqp.users.notifications).to.deep.equal({
      username: 'warren-notifications',
      password: 's',
    });
    expect(loadConfig({ NODE_ENV: 'test' }).retry.attempts).to.deep.equal({ 'analytics.tweets': 2, 'notifications.user-events': 2, 'timeline.events': 2 });
  });

  it('stops with one line naming a per-service key that names no service, and the services there are', () => {
    const withEntry = (section: object) => ({ WARREN_CONFIG: JSON.stringify(section) });
    expect(() => loadConfig(withEntry({ amqp: { users: { analytic: { username: 'warren-analytic', password: '' } } } }))).to.throw(
      ConfigError,
      /^config: amqp\.users\.analytic: analytic is not a service of Warren \(api, analytics, notifications, timeline, console\)$/,
    );
    expect(() => loadConfig(withEntry({ database: { roles: { notification: { username: 'warren_notification', password: '' } } } }))).to.throw(
      ConfigError,
      /^config: database\.roles\.notification: notification is not a service of Warren \(api, analytics, notifications, timeline, console\)$/,
    );
  });

  it("gives a worker's process the prefetch and handler timeout its declaration sets over default.json's, and lets configuration override them", () => {
    const declaring = { ...analyticsWorker, defaults: { retryAttempts: 5, prefetch: 20, handlerTimeoutMs: 20_000 } };
    expect(loadConfig({}, undefined, analyticsWorker).worker).to.include({ prefetch: 200, handlerTimeoutMs: 30_000 });
    expect(loadConfig({}, undefined, declaring).worker).to.include({ prefetch: 20, handlerTimeoutMs: 20_000 });
    expect(loadConfig({ NODE_ENV: 'test' }, undefined, declaring).worker).to.include({ prefetch: 20, handlerTimeoutMs: 20_000 });
    expect(loadConfig({ WARREN_WORKER_PREFETCH: '50', WARREN_WORKER_HANDLER_TIMEOUT_MS: '10000' }, undefined, declaring).worker).to.include({
      prefetch: 50,
      handlerTimeoutMs: 10_000,
    });
    expect(loadConfig({}).worker.prefetch, 'no worker: every worker’s default').to.equal(200);
    // Checked like a configured one: a supervisor must not kill this worker while it waits out its handlers.
    const slow = { ...analyticsWorker, defaults: { retryAttempts: 5, handlerTimeoutMs: 60_000 } };
    expect(() => loadConfig({}, undefined, slow)).to.throw(ConfigError, /^config: supervisor\.stopTimeoutMs .*must be more than worker\.handlerTimeoutMs/);
  });

  it('derives environment names and the vhost', () => {
    expect(envName(['amqp', 'managementUrl'])).to.equal('WARREN_AMQP_MANAGEMENT_URL');
    expect(vhostOf('amqp://guest:guest@127.0.0.1:5672/warren')).to.equal('warren');
    expect(vhostOf('amqp://127.0.0.1')).to.equal('/');
    expect(vhostOf('amqp://h/a%2Fb')).to.equal('a/b');
  });
});

describe('configuration of a cluster: node lists', () => {
  const list = 'amqp://guest:guest@10.0.0.1:5672/warren, amqp://guest:guest@10.0.0.2:5672/warren,amqp://guest:guest@10.0.0.3:5673/warren';

  it('takes several comma-separated AMQP and management nodes', () => {
    const config = loadConfig({ WARREN_AMQP_URL: list, WARREN_AMQP_MANAGEMENT_URL: 'http://u:p@10.0.0.1:15672,http://u:p@10.0.0.2:15672' });
    expect(config.amqp.url).to.equal(list);
    expect(vhostOf(config.amqp.url)).to.equal('warren');
  });

  it('names the bad entry of a list by its place and host, never its password', () => {
    const bad = 'amqp://guest:guest@10.0.0.1:5672/warren,http://user:hunter2@10.0.0.2:15672/warren';
    expect(() => loadConfig({ WARREN_AMQP_URL: bad })).to.throw(
      ConfigError,
      /^config: amqp\.url \(WARREN_AMQP_URL\): entry 2 of 2, http:\/\/10\.0\.0\.2:15672, must be an amqp:\/\/ or amqps:\/\/ URL$/,
    );
    expect(() => loadConfig({ WARREN_AMQP_URL: bad })).to.throw(ConfigError, /^(?!.*hunter2)/);
    expect(() => loadConfig({ WARREN_AMQP_URL: 'amqp://a:5672/warren,rabbit-2:5672' })).to.throw(ConfigError, /entry 2 of 2, .*must be an amqp:\/\//);
    expect(() => loadConfig({ WARREN_AMQP_URL: ' , ' })).to.throw(
      ConfigError,
      /amqp\.url .*must be an amqp:\/\/ or amqps:\/\/ URL, or several comma-separated/,
    );
    expect(() => loadConfig({ WARREN_AMQP_MANAGEMENT_URL: 'http://a:15672,amqp://b:5672' })).to.throw(
      ConfigError,
      /^config: amqp\.managementUrl \(WARREN_AMQP_MANAGEMENT_URL\): entry 2 of 2, amqp:\/\/b:5672, must be an http:\/\/ or https:\/\/ URL$/,
    );
  });

  it('refuses a list whose nodes name different vhosts, or one node twice', () => {
    expect(() => loadConfig({ WARREN_AMQP_URL: 'amqp://a:5672/warren,amqp://b:5672/other' })).to.throw(
      ConfigError,
      /amqp\.url .*entry 2 of 2 \(b:5672\) names vhost other, entry 1 names warren/,
    );
    expect(() => loadConfig({ WARREN_AMQP_URL: 'amqp://a:5672/warren,amqp://u:p@a/warren' })).to.throw(ConfigError, /entry 2 of 2 \(a:5672\) is entry 1 again/);
  });

  it("gives a service's own credentials to every node of the list, and refuses guest on any of them in production", () => {
    const config = loadConfig({
      WARREN_AMQP_URL: 'amqp://10.0.0.1:5672/warren,amqp://10.0.0.2/warren',
      WARREN_AMQP_USERS_API_PASSWORD: 's3cret',
      WARREN_AMQP_ALLOW_GUEST: 'false',
    });
    expect(serviceAmqpUrl(config, 'api')).to.equal('amqp://warren-api:s3cret@10.0.0.1:5672/warren,amqp://warren-api:s3cret@10.0.0.2/warren');
    expect(() => serviceAmqpUrl(config, 'analytics')).to.throw(ConfigError, /guest is for local development only/);
    expect(serviceAmqpUrl(loadConfig({ WARREN_AMQP_URL: list }), 'api').split(',')).to.have.length(3);
  });

  it('defaults to a 5 s heartbeat, so that a silent node is given up within 10 to 15 s', () => {
    expect(loadConfig({}).amqp.heartbeatSeconds).to.equal(5);
  });
});
