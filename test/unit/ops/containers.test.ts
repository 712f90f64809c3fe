import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { envName, loadConfig, projectRoot, serviceAmqpUrl } from '../../../src/config';

/**
 * docker-compose.yml and the Dockerfile checked against Warren itself (no
 * Docker needed): every command is one the `warren` CLI accepts, every
 * WARREN_* variable names a configuration key, the configuration each
 * service gets is valid for production, and no password is written down.
 */
const root = projectRoot;
const cli = path.join(root, 'dist', 'src', 'cli.js');

interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  deploy?: { replicas?: number };
  depends_on?: Record<string, { condition: string }>;
  profiles?: string[];
  restart?: string;
  user?: string;
}

interface Compose {
  services: Record<string, ComposeService>;
}

const compose = parse(fs.readFileSync(path.join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as Compose;
const warrenServices = Object.entries(compose.services).filter(([, s]) => s.image === 'warren:latest');

/** Compose's own interpolation, for the forms the file uses: ${VAR}, ${VAR:-default}, ${VAR:?error}. */
function interpolate(value: string, vars: Record<string, string>): string {
  return value.replace(/\$\{(\w+)(?::([-?])([^}]*))?\}/g, (_, name: string, op: string | undefined, arg: string | undefined) => {
    if (vars[name] !== undefined && vars[name] !== '') return vars[name]!;
    if (op === '-') return arg ?? '';
    throw new Error(`${name} is unset: ${arg}`);
  });
}

/** Every configuration key as its environment variable (`amqp.users.api.password` -> WARREN_AMQP_USERS_API_PASSWORD). */
function configEnvNames(): Set<string> {
  const out = new Set<string>(['WARREN_CONFIG']);
  const walk = (node: Record<string, unknown>, prefix: string[]) => {
    for (const [k, v] of Object.entries(node)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) walk(v as Record<string, unknown>, [...prefix, k]);
      else out.add(envName([...prefix, k]));
    }
  };
  walk(JSON.parse(fs.readFileSync(path.join(root, 'config', 'default.json'), 'utf8')), []);
  return out;
}

const secrets = {
  RABBITMQ_ADMIN_PASSWORD: 'admin-secret',
  WARREN_API_AMQP_PASSWORD: 'api-secret',
  WARREN_ANALYTICS_AMQP_PASSWORD: 'analytics-secret',
  WARREN_NOTIFICATIONS_AMQP_PASSWORD: 'notifications-secret',
  POSTGRES_PASSWORD: 'pg-secret',
};

describe('containers: docker-compose.yml and Dockerfile', function () {
  this.timeout(30_000);

  it('runs the broker, PostgreSQL, one-shot topology and migrations, and replicated api and workers', function () {
    const s = compose.services;
    expect(s.rabbitmq!.image).to.equal('rabbitmq:3.10-management');
    expect(s.postgres!.image).to.match(/^postgres:\d+/);
    const commands = Object.fromEntries(warrenServices.map(([name, svc]) => [name, svc.command]));
    expect(commands).to.deep.include({
      topology: ['topology', 'apply'],
      migrate: ['migrate'],
      api: ['api'],
      analytics: ['worker', 'analytics'],
      notifications: ['worker', 'notifications'],
    });
    for (const name of ['topology', 'migrate']) expect(s[name]!.restart, name).to.equal('no');
    for (const name of ['api', 'analytics', 'notifications']) {
      expect(s[name]!.deploy?.replicas, name).to.be.at.least(2);
      expect(s[name]!.depends_on).to.deep.equal({ topology: { condition: 'service_completed_successfully' }, migrate: { condition: 'service_completed_successfully' } });
    }
    expect(s.topology!.depends_on).to.deep.equal({ rabbitmq: { condition: 'service_healthy' } });
    expect(s.migrate!.depends_on).to.deep.equal({ postgres: { condition: 'service_healthy' } });
  });

  it('gives every Warren container a command the warren CLI accepts', function () {
    for (const [name, svc] of warrenServices) {
      const run = spawnSync(process.execPath, [cli, ...svc.command!, '--help'], { encoding: 'utf8', env: { ...process.env, NODE_ENV: 'test' } });
      expect(run.status, `${name}: warren ${svc.command!.join(' ')} --help\n${run.stderr}`).to.equal(0);
    }
  });

  it('uses only environment variables that name configuration keys, and PostgreSQL as the shared store', function () {
    const known = configEnvNames();
    for (const [name, svc] of warrenServices) {
      const vars = Object.keys(svc.environment ?? {}).filter((k) => k.startsWith('WARREN_'));
      expect(vars.filter((v) => !known.has(v)), `${name}: unknown WARREN_* variables`).to.deep.equal([]);
      expect(svc.environment!.NODE_ENV, name).to.equal('production');
      expect(svc.environment!.WARREN_DATABASE_CLIENT, name).to.equal('postgres');
    }
  });

  it('writes no password down: each comes from the environment, and compose refuses to start without it', function () {
    const everything = Object.values(compose.services).flatMap((svc) => Object.entries(svc.environment ?? {}));
    for (const [key, value] of everything) {
      if (/PASS/.test(key)) expect(value, key).to.match(/^\$\{\w+:\?[^}]+\}$/);
      expect(String(value), key).not.to.match(/:\/\/[^$/]*:[^$@]+@/); // no user:literal-password@ in a URL
    }
    const api = compose.services.api!.environment!;
    expect(() => interpolate(api.WARREN_AMQP_USERS_API_PASSWORD!, {})).to.throw('WARREN_API_AMQP_PASSWORD is unset');
  });

  it('gives each service a configuration that loads in production and connects as its own broker user', function () {
    for (const [name, svc] of warrenServices) {
      const env = Object.fromEntries(Object.entries(svc.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), secrets)]));
      const config = loadConfig(env);
      expect(config.amqp.allowGuest, name).to.equal(false);
      expect(config.database.url, name).to.equal('postgres://warren:pg-secret@postgres:5432/warren');
      expect(new URL(config.amqp.managementUrl).host, name).to.equal('rabbitmq:15672');
      for (const service of ['api', 'analytics', 'notifications'] as const) {
        const url = new URL(serviceAmqpUrl(config, service));
        expect(url.username, `${name} as ${service}`).to.equal(`warren-${service}`);
        expect(url.host).to.equal('rabbitmq:5672');
        expect(url.pathname).to.equal('/warren');
      }
    }
  });

  it('builds in two stages and runs as a non-root user with warren as the entrypoint', function () {
    const dockerfile = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
    const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)].map((m) => m[1]);
    expect(froms).to.deep.equal(['node:20-slim', 'node:20-slim']);
    expect(dockerfile).to.match(/RUN npx tsc -p tsconfig\.json/);
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('FROM '));
    expect(runtime).to.match(/^USER warren$/m);
    expect(runtime).to.match(/^ENTRYPOINT \["node", "--enable-source-maps", "\/app\/bin\/warren"\]$/m);
    expect(runtime).to.match(/COPY config \.\/config/);
    expect(runtime).to.match(/COPY rabbitmq \.\/rabbitmq/);
    expect(fs.readFileSync(path.join(root, 'bin', 'warren'), 'utf8')).to.contain("require('../dist/src/cli.js')");
  });
});
