/**
 * @file Configuration refuses what names no setting: a key in default.json,
 * <NODE_ENV>.json or WARREN_CONFIG, and a WARREN_ variable, each stopping the
 * process with one line that names every one of them.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { ConfigError, envName, projectRoot, VARIABLES_NOT_SETTINGS } from '../../src/config';
import { loadConfig } from '../../src/services';

const configDir = path.join(projectRoot, 'config');

/** A config directory of its own: the real files, with `changes` merged over `file`'s top level. */
function configDirWith(file: string, changes: Record<string, unknown>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-config-'));
  for (const name of fs.readdirSync(configDir)) fs.copyFileSync(path.join(configDir, name), path.join(dir, name));
  const target = path.join(dir, file);
  const current = fs.existsSync(target) ? (JSON.parse(fs.readFileSync(target, 'utf8')) as Record<string, unknown>) : {};
  fs.writeFileSync(target, JSON.stringify({ ...current, ...changes }));
  return dir;
}

function lineOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('configuration: what names no setting', () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
  });
  const dirWith = (file: string, changes: Record<string, unknown>) => {
    const dir = configDirWith(file, changes);
    dirs.push(dir);
    return dir;
  };

  it('stops on unknown keys in WARREN_CONFIG, naming each with where it came from', () => {
    const line = lineOf(() =>
      loadConfig({ WARREN_CONFIG: JSON.stringify({ http: { prot: 1 }, lgo: { level: 'debug' }, amqp: { users: { api: { pasword: 'x' } } } }) }),
    );
    expect(line).to.equal(
      'config: http.prot (WARREN_CONFIG), lgo (WARREN_CONFIG), amqp.users.api.pasword (WARREN_CONFIG): no such setting (misspelt? config/default.json has every key)',
    );
    expect(line.split('\n')).to.have.length(1);
  });

  it('stops on unknown keys in default.json and in the <NODE_ENV>.json', () => {
    expect(lineOf(() => loadConfig({}, dirWith('default.json', { relayy: { batchSize: 5 } })))).to.match(/^config: relayy \(default\.json\): no such setting/);
    const dir = dirWith('production.json', { worker: { prefetch: 10, prefech: 10 } });
    expect(lineOf(() => loadConfig({ NODE_ENV: 'production' }, dir))).to.match(/^config: worker\.prefech \(production\.json\): no such setting/);
    // The same file is not read for another environment.
    expect(loadConfig({ NODE_ENV: 'test' }, dir).worker.prefetch).to.equal(200);
  });

  it('stops on WARREN_ variables that name no setting, all of them in one sorted line', () => {
    const line = lineOf(() => loadConfig({ WARREN_HTTP_PROT: '80', WARREN_AMQP_URLL: 'amqp://elsewhere', WARREN_AMQP_USERS_ANALYTCS_PASSWORD: 'x' }));
    expect(line).to.equal(
      "config: WARREN_AMQP_URLL, WARREN_AMQP_USERS_ANALYTCS_PASSWORD, WARREN_HTTP_PROT: names no setting (misspelt? a setting's variable is its key in upper snake case: http.port is WARREN_HTTP_PORT)",
    );
  });

  it("accepts every setting's variable, the variables that are not settings, and the tests' own", () => {
    const every: Record<string, string> = {};
    const walk = (node: unknown, prefix: string[]): void => {
      if (typeof node === 'object' && node !== null && !Array.isArray(node)) for (const [k, v] of Object.entries(node)) walk(v, [...prefix, k]);
      else if (prefix[0] !== 'retry') every[envName(prefix)] = String(node);
    };
    const config = loadConfig({});
    walk({ ...config, amqp: { ...config.amqp, definitionsFile: 'rabbitmq/definitions.json' }, database: { ...config.database, dir: 'data' } }, []);
    expect(Object.keys(every)).to.include.members([
      'WARREN_HTTP_PORT',
      'WARREN_AMQP_USERS_ANALYTICS_PASSWORD',
      'WARREN_DATABASE_ROLES_API_USERNAME',
      'WARREN_LOG_LEVEL',
    ]);
    expect(() => loadConfig(every)).to.not.throw();
    const notSettings = Object.fromEntries(VARIABLES_NOT_SETTINGS.names.map((n) => [n, n === 'WARREN_CONFIG' ? '{}' : '1']));
    expect(() =>
      loadConfig({
        ...notSettings,
        WARREN_TEST_DB: 'postgres',
        WARREN_TEST_PG_URL: 'postgres://x',
        WARREN_TEST_ANYTHING: '1',
        WARREN_REQUIRE_PGBOUNCER: '1',
        WARREN_PGBOUNCER_PORT: '6433',
      }),
    ).to.not.throw();
    // Variables without the prefix are nobody's business here.
    expect(() => loadConfig({ WARRENHTTP_PORT: '1', HTTP_PORT: 'x', NODE_ENV: 'test' })).to.not.throw();
  });

  it('stops the real process with exit 2 and that one line on stderr, before doing anything', () => {
    const cli = path.join(projectRoot, 'dist', 'src', 'cli.js');
    const env = { PATH: process.env.PATH, WARREN_AMQP_URLL: 'amqp://nowhere' };
    const run = spawnSync(process.execPath, [cli, 'api'], { env, encoding: 'utf8', timeout: 20_000 });
    expect(run.status).to.equal(2);
    expect(run.stderr.trim().split('\n')).to.deep.equal([
      "config: WARREN_AMQP_URLL: names no setting (misspelt? a setting's variable is its key in upper snake case: http.port is WARREN_HTTP_PORT)",
    ]);
  });
});
