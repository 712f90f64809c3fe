import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parse } from 'yaml';
import { envName, projectRoot, serviceAmqpUrl, servicePasswords, type Config } from '../../../src/config';
import { SERVICES, loadConfig } from '../../../src/services';
import { serviceDatabaseUrl } from '../../../src/db/roles';
import { parseNodeList } from '../../../src/broker/nodes';

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
  hostname?: string;
  volumes?: string[];
  stop_grace_period?: string;
  ports?: string[];
}

interface Compose {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
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

/**
 * Every configuration key as its environment variable (`amqp.users.api.password` -> WARREN_AMQP_USERS_API_PASSWORD):
 * the keys of the default configuration, the ones the worker declarations add included.
 */
function configEnvNames(): Set<string> {
  const out = new Set<string>(['WARREN_CONFIG']);
  const walk = (node: Record<string, unknown>, prefix: string[]) => {
    for (const [k, v] of Object.entries(node)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) walk(v as Record<string, unknown>, [...prefix, k]);
      else out.add(envName([...prefix, k]));
    }
  };
  walk(loadConfig({}) as unknown as Record<string, unknown>, []);
  return out;
}

const secrets: Record<string, string> = {
  RABBITMQ_ADMIN_PASSWORD: 'admin-secret',
  RABBITMQ_ERLANG_COOKIE: 'cookie-secret',
  WARREN_API_AMQP_PASSWORD: 'api-secret',
  WARREN_ANALYTICS_AMQP_PASSWORD: 'analytics-secret',
  WARREN_NOTIFICATIONS_AMQP_PASSWORD: 'notifications-secret',
  WARREN_TIMELINE_AMQP_PASSWORD: 'timeline-secret',
  WARREN_CONSOLE_AMQP_PASSWORD: 'console-secret',
  WARREN_MONITOR_PASSWORD: 'monitor-secret',
  POSTGRES_PASSWORD: 'pg-secret',
  WARREN_API_PG_PASSWORD: 'api-pg-secret',
  WARREN_ANALYTICS_PG_PASSWORD: 'analytics-pg-secret',
  WARREN_NOTIFICATIONS_PG_PASSWORD: 'notifications-pg-secret',
  WARREN_TIMELINE_PG_PASSWORD: 'timeline-pg-secret',
  WARREN_CONSOLE_PG_PASSWORD: 'console-pg-secret',
};

/** The secrets (variables named *PASSWORD*) a container's environment takes from the host. */
function secretsOf(name: string): string[] {
  const values = Object.values(compose.services[name]!.environment ?? {}).map(String);
  const vars = values.flatMap((v) => [...v.matchAll(/\$\{(\w+)/g)].map((m) => m[1]!));
  return [...new Set(vars.filter((v) => /PASSWORD/.test(v)))].sort();
}

/** A container's configuration as Warren loads it from its environment, the secrets filled in. */
function configOf(name: string): Config {
  const env = Object.fromEntries(Object.entries(compose.services[name]!.environment ?? {}).map(([k, v]) => [k, interpolate(String(v), secrets)]));
  return loadConfig(env);
}

/** Compose durations as the file writes them: `90s`, `1m30s`, `500ms`. */
function durationMs(value: string): number {
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  expect(parts.map((m) => m[0]).join(''), `duration ${value}`).to.equal(value);
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  return parts.reduce((sum, m) => sum + Number(m[1]) * unit[m[2]!]!, 0);
}

const services = ['api', 'analytics', 'notifications', 'timeline'] as const;
const rabbitNodes = ['rabbitmq-1', 'rabbitmq-2', 'rabbitmq-3'];
const nodeHosts = (port: number) => rabbitNodes.map((n) => `${n}:${port}`);

describe('containers: docker-compose.yml and Dockerfile', function () {
  this.timeout(30_000);

  it('runs a three-node RabbitMQ cluster, PostgreSQL, one-shot topology and migrations, and replicated api and workers', function () {
    const s = compose.services;
    for (const node of rabbitNodes) {
      expect(s[node]!.image, node).to.equal('rabbitmq:3.10-management');
      // The node name follows the host name; quorum queue data belongs to the node name.
      expect(s[node]!.hostname, node).to.equal(node);
      expect(s[node]!.environment!.RABBITMQ_ERLANG_COOKIE, `${node}: one cookie for all`).to.equal('${RABBITMQ_ERLANG_COOKIE:?set RABBITMQ_ERLANG_COOKIE}');
      expect(s[node]!.volumes, node).to.include('./rabbitmq/cluster.conf:/etc/rabbitmq/conf.d/20-cluster.conf:ro');
    }
    const clusterConf = fs.readFileSync(path.join(root, 'rabbitmq', 'cluster.conf'), 'utf8');
    for (const node of rabbitNodes) expect(clusterConf).to.contain(`= rabbit@${node}\n`);
    expect(clusterConf).to.match(/^cluster_partition_handling = pause_minority$/m);
    expect(s.postgres!.image).to.match(/^postgres:\d+/);
    const commands = Object.fromEntries(warrenServices.map(([name, svc]) => [name, svc.command]));
    expect(commands).to.deep.include({
      topology: ['topology', 'apply'],
      migrate: ['migrate'],
      api: ['api'],
      analytics: ['worker', 'analytics'],
      notifications: ['worker', 'notifications'],
      timeline: ['worker', 'timeline'],
    });
    for (const name of ['topology', 'migrate']) expect(s[name]!.restart, name).to.equal('no');
    // The API finds every timeline replica through the service's name (one address each).
    expect(s.api!.environment).to.include({ WARREN_TIMELINE_URLS: 'http://timeline:3100', WARREN_TIMELINE_GRPC_URLS: 'http://timeline:3110' });
    for (const name of ['api', 'analytics', 'notifications', 'timeline']) {
      expect(s[name]!.deploy?.replicas, name).to.be.at.least(2);
      expect(s[name]!.depends_on).to.deep.equal({ topology: { condition: 'service_completed_successfully' }, migrate: { condition: 'service_completed_successfully' } });
    }
    // The definitions are applied once, when every node runs: each quorum queue gets a member on each.
    const healthy = Object.fromEntries(rabbitNodes.map((n) => [n, { condition: 'service_healthy' }]));
    expect(s.topology!.depends_on).to.deep.equal(healthy);
    expect(s.ops!.depends_on).to.deep.equal(healthy);
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

  it('gives each container only its own secrets: its broker user, its PostgreSQL role and the monitor; the administrators only to topology, migrate and ops', function () {
    expect(secretsOf('api')).to.deep.equal(['WARREN_API_AMQP_PASSWORD', 'WARREN_API_PG_PASSWORD', 'WARREN_MONITOR_PASSWORD']);
    expect(secretsOf('analytics')).to.deep.equal(['WARREN_ANALYTICS_AMQP_PASSWORD', 'WARREN_ANALYTICS_PG_PASSWORD', 'WARREN_MONITOR_PASSWORD']);
    expect(secretsOf('notifications')).to.deep.equal(['WARREN_MONITOR_PASSWORD', 'WARREN_NOTIFICATIONS_AMQP_PASSWORD', 'WARREN_NOTIFICATIONS_PG_PASSWORD']);
    expect(secretsOf('timeline')).to.deep.equal(['WARREN_MONITOR_PASSWORD', 'WARREN_TIMELINE_AMQP_PASSWORD', 'WARREN_TIMELINE_PG_PASSWORD']);
    // topology sets every broker user's password as the administrator; it needs no database.
    expect(secretsOf('topology')).to.deep.equal([
      'RABBITMQ_ADMIN_PASSWORD',
      'WARREN_ANALYTICS_AMQP_PASSWORD',
      'WARREN_API_AMQP_PASSWORD',
      'WARREN_CONSOLE_AMQP_PASSWORD',
      'WARREN_MONITOR_PASSWORD',
      'WARREN_NOTIFICATIONS_AMQP_PASSWORD',
      'WARREN_TIMELINE_AMQP_PASSWORD',
    ]);
    // migrate creates every role as the database owner; it needs no broker.
    expect(secretsOf('migrate')).to.deep.equal([
      'POSTGRES_PASSWORD',
      'WARREN_ANALYTICS_PG_PASSWORD',
      'WARREN_API_PG_PASSWORD',
      'WARREN_CONSOLE_PG_PASSWORD',
      'WARREN_NOTIFICATIONS_PG_PASSWORD',
      'WARREN_TIMELINE_PG_PASSWORD',
    ]);
    expect(secretsOf('ops')).to.deep.equal(['RABBITMQ_ADMIN_PASSWORD', 'WARREN_API_PG_PASSWORD']);
    for (const node of rabbitNodes) expect(secretsOf(node), node).to.deep.equal(['RABBITMQ_ADMIN_PASSWORD']);
    expect(secretsOf('postgres')).to.deep.equal(['POSTGRES_PASSWORD']);
    const holders = Object.keys(compose.services).filter((name) => secretsOf(name).includes('RABBITMQ_ADMIN_PASSWORD'));
    expect(holders.sort()).to.deep.equal(['ops', ...rabbitNodes, 'topology']);
  });

  it('connects each service as its own broker user, and as no other, to every node of the cluster', function () {
    for (const name of services) {
      const config = configOf(name);
      expect(config.amqp.allowGuest, name).to.equal(false);
      const nodes = parseNodeList(config.amqp.url).map((u) => new URL(u));
      expect(nodes.map((u) => u.host), `${name}: every node`).to.deep.equal(nodeHosts(5672));
      for (const u of nodes) expect(u.username, `${name}: credentials in amqp.url`).to.equal('');
      for (const entry of parseNodeList(serviceAmqpUrl(config, name))) {
        const url = new URL(entry);
        expect([url.username, url.password, url.pathname], name).to.deep.equal([`warren-${name}`, `${name}-secret`, '/warren']);
      }
      // Another service's user is out of reach: without its password the service would be guest, which production refuses.
      for (const other of services.filter((s) => s !== name)) expect(() => serviceAmqpUrl(config, other), `${name} as ${other}`).to.throw(/guest is for local development only/);
    }
  });

  it("checks the services' topology at start-up as the read-only monitor user, never the administrator", function () {
    for (const name of services) {
      const config = configOf(name);
      const management = parseNodeList(config.amqp.managementUrl).map((u) => new URL(u));
      expect(management.map((u) => u.host), `${name}: every node's management API`).to.deep.equal(nodeHosts(15672));
      for (const u of management) expect([u.username, u.password], name).to.deep.equal([config.amqp.monitor.username, 'monitor-secret']);
      expect(config.amqp.monitor.username).to.equal('warren-monitor');
    }
    for (const name of ['topology', 'ops']) {
      const management = parseNodeList(configOf(name).amqp.managementUrl).map((u) => new URL(u));
      expect(management.map((u) => u.host), name).to.deep.equal(nodeHosts(15672));
      for (const u of management) expect([u.username, u.password], name).to.deep.equal(['warren-admin', 'admin-secret']);
    }
    expect(servicePasswords(configOf('topology'))).to.deep.equal({
      'warren-api': 'api-secret',
      'warren-analytics': 'analytics-secret',
      'warren-notifications': 'notifications-secret',
      'warren-console': 'console-secret',
      'warren-timeline': 'timeline-secret',
      'warren-monitor': 'monitor-secret',
    });
    for (const u of parseNodeList(configOf('ops').amqp.url)) expect(new URL(u).username).to.equal('warren-admin');
  });

  it('connects each service to PostgreSQL as its own role; only migrate holds the owner, and gives every role its password', function () {
    for (const name of services) {
      const config = configOf(name);
      expect(new URL(config.database.url).username, `${name}: credentials in database.url`).to.equal('');
      for (const service of SERVICES) {
        const url = new URL(serviceDatabaseUrl(config, service));
        if (service === name) expect([url.username, url.password, url.host, url.pathname], name).to.deep.equal([`warren_${name}`, `${name}-pg-secret`, 'postgres:5432', '/warren']);
        else expect(url.username, `${name} as ${service}`).to.equal('');
      }
    }
    const migrate = configOf('migrate');
    expect(migrate.database.url).to.equal('postgres://warren:pg-secret@postgres:5432/warren');
    expect(Object.fromEntries(SERVICES.map((s) => [migrate.database.roles[s].username, migrate.database.roles[s].password]))).to.deep.equal({
      warren_api: 'api-pg-secret',
      warren_analytics: 'analytics-pg-secret',
      warren_notifications: 'notifications-pg-secret',
      warren_timeline: 'timeline-pg-secret',
      warren_console: 'console-pg-secret',
    });
    expect(compose.services.postgres!.environment!.POSTGRES_USER).to.equal('warren');
    expect(new URL(serviceDatabaseUrl(configOf('ops'), 'api')).username).to.equal('warren_api');
  });

  it('keeps .env out of the image', function () {
    const ignored = fs.readFileSync(path.join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    expect(ignored).to.include('.env');
    for (const entry of ['node_modules', 'data', 'dist']) expect(ignored).to.include(entry);
  });

  it('lets every long-running service stop longer than supervisor.stopTimeoutMs before compose kills it', function () {
    const longRunning = warrenServices.filter(([, svc]) => svc.restart !== 'no');
    expect(longRunning.map(([name]) => name).sort()).to.deep.equal(['analytics', 'api', 'console', 'notifications', 'timeline']);
    for (const [name, svc] of longRunning) {
      expect(svc.stop_grace_period, name).to.be.a('string');
      expect(durationMs(svc.stop_grace_period!), name).to.be.above(configOf(name).supervisor.stopTimeoutMs);
    }
  });

  it('builds in two stages and runs as a non-root user with warren under tini as the entrypoint', function () {
    const dockerfile = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
    const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)].map((m) => m[1]);
    expect(froms).to.deep.equal(['node:24-slim', 'node:24-slim']);
    expect(dockerfile).to.match(/RUN npx tsc -p tsconfig\.json/);
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('FROM '));
    expect(runtime).to.match(/^USER warren$/m);
    // tini (Debian's) is PID 1: it reaps orphans and forwards signals to warren.
    expect(runtime).to.match(/apt-get install -y --no-install-recommends tini/);
    expect(runtime).to.match(/^ENTRYPOINT \["\/usr\/bin\/tini", "--", "node", "--enable-source-maps", "\/app\/bin\/warren"\]$/m);
    expect(runtime).to.match(/COPY config \.\/config/);
    expect(runtime).to.match(/COPY rabbitmq \.\/rabbitmq/);
    expect(fs.readFileSync(path.join(root, 'bin', 'warren'), 'utf8')).to.contain("require('../dist/src/cli.js')");
  });
});

interface ScrapeConfig {
  job_name: string;
  metrics_path?: string;
  dns_sd_configs?: { names: string[]; type: string; port: number }[];
  static_configs?: unknown[];
}

/** promtool from PROMTOOL or PATH (Debian's `prometheus` package has it), else undefined. */
function promtool(): string | undefined {
  if (process.env.PROMTOOL) return process.env.PROMTOOL;
  const found = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() || undefined : undefined;
}

describe('containers: the monitoring profile (Prometheus and Grafana)', function () {
  const s = compose.services;
  const monitoring = ['prometheus', 'grafana'];
  const prometheusFile = path.join(root, 'ops', 'prometheus', 'prometheus.yml');
  const prometheus = parse(fs.readFileSync(prometheusFile, 'utf8')) as { rule_files: string[]; scrape_configs: ScrapeConfig[] };

  /** A bind mount's host path, container path and mode; undefined for a named volume. */
  const bindMounts = (name: string) =>
    (s[name]!.volumes ?? [])
      .map((v) => v.split(':'))
      .filter(([from]) => from!.startsWith('./'))
      .map(([from, to, mode]) => ({ from: path.join(root, from!), to: to!, mode }));

  it('runs Prometheus and Grafana only under the monitoring profile, on the host loopback, every file they mount read-only from the repository', function () {
    for (const name of monitoring) {
      expect(s[name], name).to.exist;
      expect(s[name]!.profiles, name).to.deep.equal(['monitoring']);
      for (const port of s[name]!.ports ?? []) expect(port, `${name} publishes on loopback only`).to.match(/^127\.0\.0\.1:/);
      const mounts = bindMounts(name);
      expect(mounts, name).to.not.be.empty;
      for (const m of mounts) {
        expect(fs.existsSync(m.from), `${name}: ${path.relative(root, m.from)} exists`).to.equal(true);
        expect(m.mode, `${name}: ${m.to}`).to.equal('ro');
      }
      const named = (s[name]!.volumes ?? []).map((v) => v.split(':')[0]!).filter((v) => !v.startsWith('./'));
      for (const volume of named) expect(compose.volumes, `volume ${volume}`).to.have.property(volume);
    }
    // Nothing else moves into the profile, and nothing of Warren's needs it.
    const inProfile = Object.entries(s).filter(([, svc]) => svc.profiles?.includes('monitoring')).map(([name]) => name);
    expect(inProfile.sort()).to.deep.equal([...monitoring].sort());
    for (const [name, svc] of warrenServices) expect(Object.keys(svc.depends_on ?? {}), name).to.not.include.members(monitoring);
  });

  it("loads Prometheus's configuration and Warren's alert rules where the configuration looks for them", function () {
    const mounts = bindMounts('prometheus');
    const config = mounts.find((m) => m.from === prometheusFile);
    expect(config, 'ops/prometheus/prometheus.yml is mounted').to.exist;
    expect(s.prometheus!.command).to.include(`--config.file=${config!.to}`);
    // Rule files are relative to the configuration file, in the container as here.
    for (const rule of prometheus.rule_files) {
      const inContainer = path.posix.join(path.posix.dirname(config!.to), rule);
      const mounted = mounts.find((m) => m.to === inContainer);
      expect(mounted, `${rule} mounted at ${inContainer}`).to.exist;
      expect(mounted!.from).to.equal(path.join(path.dirname(prometheusFile), rule));
    }
    expect(prometheus.rule_files).to.include('warren-alerts.yml');
  });

  it('scrapes every replica of each Warren process that serves /metrics, on the port its configuration listens on', function () {
    // Where each long-running Warren service serves /metrics (the console serves none).
    const metricsPort: Record<string, number> = {
      api: configOf('api').http.port,
      analytics: configOf('analytics').worker.healthPort,
      notifications: configOf('notifications').worker.healthPort,
      timeline: configOf('timeline').timeline.port,
    };
    for (const [name, port] of Object.entries(metricsPort)) expect(port, `${name} listens for /metrics`).to.be.above(0);
    // Every replica: the service's name through Docker's DNS, one A record each; no fixed addresses.
    const targets: Record<string, number> = {};
    for (const job of prometheus.scrape_configs) {
      expect(job.static_configs, `${job.job_name}: no fixed targets`).to.equal(undefined);
      expect(job.metrics_path ?? '/metrics', job.job_name).to.equal('/metrics');
      for (const sd of job.dns_sd_configs ?? []) {
        expect(sd.type, job.job_name).to.equal('A');
        for (const name of sd.names) {
          expect(s[name], `${job.job_name} scrapes ${name}, a compose service`).to.exist;
          expect(s[name]!.image, `${name} is a Warren service`).to.equal('warren:latest');
          targets[name] = sd.port;
        }
      }
    }
    expect(targets).to.deep.equal(metricsPort);
    // Each of them listens on every interface of its container, so Prometheus reaches it.
    expect(configOf('api').http.host).to.equal('0.0.0.0');
    expect(configOf('analytics').http.host).to.equal('0.0.0.0');
    expect(configOf('notifications').http.host).to.equal('0.0.0.0');
    expect(configOf('timeline').timeline.host).to.equal('0.0.0.0');
  });

  it("provisions Grafana with the prometheus service as its datasource and the repository's Warren dashboard", function () {
    const mounts = bindMounts('grafana');
    const provisioning = mounts.find((m) => m.to === '/etc/grafana/provisioning');
    expect(provisioning, 'ops/grafana/provisioning mounted where Grafana reads it').to.exist;
    const datasources = parse(fs.readFileSync(path.join(provisioning!.from, 'datasources', 'prometheus.yml'), 'utf8')) as {
      datasources: { type: string; url: string; isDefault?: boolean }[];
    };
    const [source] = datasources.datasources;
    expect(source!.type).to.equal('prometheus');
    const url = new URL(source!.url);
    expect(s[url.hostname], `the datasource's host ${url.hostname} is a compose service`).to.exist;
    const published = (s.prometheus!.ports ?? []).map((p) => Number(p.split(':').at(-1)));
    expect(published, "the datasource's port is Prometheus's").to.include(Number(url.port));
    expect(source!.isDefault).to.equal(true);

    const providers = parse(fs.readFileSync(path.join(provisioning!.from, 'dashboards', 'warren.yml'), 'utf8')) as {
      providers: { type: string; options: { path: string } }[];
    };
    const dashboardDir = providers.providers[0]!.options.path;
    const dashboards = mounts.filter((m) => path.posix.dirname(m.to) === dashboardDir);
    expect(dashboards.map((m) => path.relative(root, m.from))).to.deep.equal([path.join('ops', 'grafana', 'warren.json')]);
    const dashboard = JSON.parse(fs.readFileSync(dashboards[0]!.from, 'utf8')) as { templating: { list: { name: string; type: string; query: unknown }[] } };
    // The dashboard's datasource variable finds the provisioned Prometheus by type.
    expect(dashboard.templating.list.some((v) => v.type === 'datasource' && v.query === 'prometheus')).to.equal(true);
    expect(s.grafana!.environment!.GF_SECURITY_ADMIN_PASSWORD).to.equal('${GRAFANA_ADMIN_PASSWORD:?set GRAFANA_ADMIN_PASSWORD}');
    expect(fs.readFileSync(path.join(root, '.env.example'), 'utf8')).to.match(/^GRAFANA_ADMIN_PASSWORD=$/m);
  });

  it('passes promtool check config, the alert rules included (where promtool is installed)', function () {
    const bin = promtool();
    if (!bin) this.skip();
    const run = spawnSync(bin!, ['check', 'config', prometheusFile], { encoding: 'utf8' });
    expect(run.status, run.stdout + run.stderr).to.equal(0);
    expect(run.stdout).to.include('SUCCESS: 1 rule files found');
    expect(run.stdout).to.include('SUCCESS: 4 rules found');
  });
});
