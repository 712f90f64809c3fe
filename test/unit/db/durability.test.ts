import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { expect } from 'chai';
import knexFactory, { type Knex } from 'knex';
import { type Config } from '../../../src/config';
import { loadConfig } from '../../../src/services';
import { AsyncCommitError, asyncCommitRefusal, openDatabase, type Db } from '../../../src/db/knex';

/**
 * PostgreSQL sessions whose synchronous_commit is a role's default, set on a
 * role made for each setting (not a start-up parameter, which a pooler such
 * as PgBouncer refuses, so the tests run through one as well).
 */
describe('durable commits on PostgreSQL', function () {
  const pgUrl = process.env.WARREN_TEST_PG_URL;
  const opened: Db[] = [];
  const roles = new Map<string, string>();
  let admin: Knex | undefined;
  before(async function () {
    if (!pgUrl) this.skip();
    admin = knexFactory({ client: 'pg', connection: pgUrl, pool: { min: 0, max: 1 } });
    const suffix = crypto.randomBytes(4).toString('hex');
    for (const setting of ['off', 'local', 'remote_apply']) {
      const role = `warren_sync_${setting}_${suffix}`;
      await admin.raw('CREATE ROLE ?? LOGIN', [role]);
      await admin.raw(`ALTER ROLE ?? SET synchronous_commit = ${setting}`, [role]);
      roles.set(setting, role);
    }
  });
  after(async () => {
    await Promise.all(opened.map((db) => db.destroy()));
    for (const role of roles.values()) await admin!.raw('DROP ROLE IF EXISTS ??', [role]).catch(() => undefined);
    await admin?.destroy();
  });

  function urlWith(setting: string | undefined): URL {
    const url = new URL(pgUrl!);
    if (setting) url.username = roles.get(setting)!;
    return url;
  }

  function configWith(setting: string | undefined, env: NodeJS.ProcessEnv = {}): Config {
    return loadConfig({ WARREN_DATABASE_CLIENT: 'postgres', WARREN_DATABASE_URL: urlWith(setting).toString(), ...env });
  }

  function open(config: Config): Db {
    const db = openDatabase(config, 'api');
    opened.push(db);
    return db;
  }

  for (const setting of ['off', 'local']) {
    it(`refuses a session whose synchronous_commit is ${setting}, in one line naming the setting`, async () => {
      const config = configWith(setting);
      const line = await asyncCommitRefusal(config);
      expect(line).to.match(new RegExp(`^PostgreSQL synchronous_commit is ${setting} for this session`));
      expect(line).to.include('database.allowAsyncCommit');
      expect(line).to.not.include('\n');
      // Not only at start-up: no query runs on such a session.
      const [refused] = await Promise.allSettled([open(config).raw('SELECT 1')]);
      expect(refused.status === 'rejected' && refused.reason).to.be.instanceOf(AsyncCommitError);
    });
  }

  it('accepts PostgreSQL’s default (on), and an asynchronous session when configuration allows it', async () => {
    expect(await asyncCommitRefusal(configWith(undefined))).to.equal('');
    expect(await asyncCommitRefusal(configWith('remote_apply'))).to.equal('');
    expect((await open(configWith(undefined)).raw('SELECT 1 AS one')).rows).to.deep.equal([{ one: 1 }]);
    const allowed = configWith('off', { WARREN_DATABASE_ALLOW_ASYNC_COMMIT: 'true' });
    expect(await asyncCommitRefusal(allowed)).to.equal('');
    expect((await open(allowed).raw('SHOW synchronous_commit')).rows[0].synchronous_commit).to.equal('off');
  });

  it('stops `warren api` at start-up with that one line when the session commits asynchronously', function () {
    this.timeout(20_000);
    const url = urlWith('off');
    const cli = path.resolve(__dirname, '..', '..', '..', 'src', 'cli.js');
    const env = { ...process.env, NODE_ENV: 'test', WARREN_DATABASE_CLIENT: 'postgres', WARREN_DATABASE_URL: url.toString(), WARREN_HTTP_PORT: '0' };
    const run = spawnSync(process.execPath, [cli, 'api'], { env, encoding: 'utf8', timeout: 15_000 });
    expect(run.status, run.stderr).to.equal(1);
    expect(run.stderr.trim().split('\n'), run.stderr).to.have.length(1);
    expect(run.stderr).to.match(/^warren api: PostgreSQL synchronous_commit is off for this session/);
  });
});
