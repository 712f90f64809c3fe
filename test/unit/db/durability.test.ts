import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import { type Config } from '../../../src/config';
import { loadConfig } from '../../../src/services';
import { AsyncCommitError, asyncCommitRefusal, openDatabase, type Db } from '../../../src/db/knex';

/** PostgreSQL sessions whose synchronous_commit is set by the connection's options, as a role or database default would set it. */
describe('durable commits on PostgreSQL', function () {
  const pgUrl = process.env.WARREN_TEST_PG_URL;
  const opened: Db[] = [];
  before(function () {
    if (!pgUrl) this.skip();
  });
  after(async () => {
    await Promise.all(opened.map((db) => db.destroy()));
  });

  function configWith(setting: string | undefined, env: NodeJS.ProcessEnv = {}): Config {
    const url = new URL(pgUrl!);
    if (setting) url.searchParams.set('options', `-c synchronous_commit=${setting}`);
    return loadConfig({ WARREN_DATABASE_CLIENT: 'postgres', WARREN_DATABASE_URL: url.toString(), ...env });
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
    const url = new URL(pgUrl!);
    url.searchParams.set('options', '-c synchronous_commit=off');
    const cli = path.resolve(__dirname, '..', '..', '..', 'src', 'cli.js');
    const env = { ...process.env, NODE_ENV: 'test', WARREN_DATABASE_CLIENT: 'postgres', WARREN_DATABASE_URL: url.toString(), WARREN_HTTP_PORT: '0' };
    const run = spawnSync(process.execPath, [cli, 'api'], { env, encoding: 'utf8', timeout: 15_000 });
    expect(run.status, run.stderr).to.equal(1);
    expect(run.stderr.trim().split('\n'), run.stderr).to.have.length(1);
    expect(run.stderr).to.match(/^warren api: PostgreSQL synchronous_commit is off for this session/);
  });
});
