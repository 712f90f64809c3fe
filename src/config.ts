import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { nodeLabel, parseNodeList } from './broker/nodes';

/**
 * Configuration is data: default.json, then <NODE_ENV>.json, then environment
 * variables, validated once here and handed down as a typed object. A bad
 * value stops the process with one line naming the key (see loadConfigOrExit).
 * What differs per service (its broker user, its PostgreSQL role, its
 * queue's retry attempts) comes from a ServiceCatalogue that the caller
 * hands in: src/services.ts derives it from the worker declarations, so
 * default.json names no worker and this module knows none.
 */
const positiveInt = z.coerce.number().int().positive();
/** A list of base URLs: a JSON array, or one comma-separated string (as an environment variable gives it); trailing slashes dropped. */
const urlList = (protocol: RegExp, emptyMessage: string) =>
  z
    .union([z.array(z.string()), z.string().transform(parseNodeList)])
    .pipe(z.array(z.url({ protocol }).transform((u) => u.replace(/\/+$/, ''))).min(1, emptyMessage));

/**
 * One node's URL, or a cluster's nodes comma-separated. A bad entry is
 * named by its place and its host, never its password; every node of a list
 * names the same vhost (the AMQP list) and no node comes twice.
 */
function nodeList(schemes: RegExp, what: string, sameVhost: boolean) {
  return z.string().superRefine((list, ctx) => {
    const entries = parseNodeList(list);
    if (entries.length === 0) ctx.addIssue({ code: 'custom', message: `must be ${what}, or several comma-separated` });
    const seen = new Map<string, number>();
    entries.forEach((entry, i) => {
      const place = entries.length > 1 ? `entry ${i + 1} of ${entries.length} (${nodeLabel(entry)})` : '';
      let url: URL | undefined;
      try {
        url = new URL(entry);
      } catch {
        url = undefined;
      }
      if (!url || !schemes.test(entry)) {
        const shown = url ? `${url.protocol}//${nodeLabel(entry)}` : JSON.stringify(entry.replace(/:[^:@/]*@/, ':***@'));
        ctx.addIssue({ code: 'custom', message: `${entries.length > 1 ? `entry ${i + 1} of ${entries.length}, ` : ''}${shown}, must be ${what}` });
        return;
      }
      const label = nodeLabel(entry);
      const first = seen.get(label);
      if (first !== undefined) ctx.addIssue({ code: 'custom', message: `${place} is entry ${first + 1} again: each node once` });
      seen.set(label, i);
      if (sameVhost && i > 0 && vhostOf(entry) !== vhostOf(entries[0]!)) {
        ctx.addIssue({
          code: 'custom',
          message: `${place} names vhost ${vhostOf(entry)}, entry 1 names ${vhostOf(entries[0]!)}: every node of a cluster serves the same vhost`,
        });
      }
    });
  });
}
const brokerUser = z.object({ username: z.string().min(1), password: z.string() });
/** A PostgreSQL role name Warren quotes nowhere differently: lower case, as the server folds unquoted names. */
const databaseRole = z.object({
  username: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a PostgreSQL role name: lower-case letters, digits and _, at most 63'),
  password: z.string(),
});

/** How long a stopping worker may take beyond its handler timeout to close its connections and database. */
export const WORKER_STOP_MARGIN_MS = 10_000;

/**
 * What configuration knows of the services: the keys of the sections that
 * hold one entry per service (amqp.users by broker user, database.roles by
 * database, the API's included) and each work queue's default retry attempts.
 */
export interface ServiceCatalogue {
  brokerUsers: readonly string[];
  databaseServices: readonly string[];
  retryAttempts: Readonly<Record<string, number>>;
}

/** One process's own defaults for worker.*, over config/default.json's (a worker's declaration gives them). */
export interface ProcessDefaults {
  prefetch?: number;
  handlerTimeoutMs?: number;
}

const baseSchema = z.object({
  http: z.object({
    host: z.string().min(1),
    port: z.coerce.number().int().min(0).max(65535),
    bodyLimitBytes: positiveInt,
    /** On SIGTERM the API answers /readyz 503 this long before it stops taking connections, so a load balancer notices first. */
    drainDelayMs: z.coerce.number().int().min(0).max(20_000),
  }),
  amqp: z.object({
    /** One node, or a cluster's nodes comma-separated: each process tries them in an order of its own (src/broker/nodes.ts). */
    url: nodeList(/^amqps?:\/\//, 'an amqp:// or amqps:// URL', true),
    managementUrl: nodeList(/^https?:\/\//, 'an http:// or https:// URL', false),
    definitionsFile: z.string().min(1),
    /** A silent connection counts as dead after two to three heartbeats (amqplib), and a connect gets two to answer. */
    heartbeatSeconds: positiveInt,
    reconnectSeconds: z.coerce.number().positive(),
    /** Each service's own RabbitMQ user; with no password the service uses amqp.url's credentials (local development). */
    users: z.record(z.string(), brokerUser),
    /**
     * The read-only management user (tag `monitoring`, read-only permissions in
     * the definitions) that `topology apply` gives this password; services put
     * its credentials in amqp.managementUrl for their start-up checks.
     */
    monitor: brokerUser,
    /** `guest` only connects from localhost: allowed for local development, refused in production. */
    allowGuest: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]),
  }),
  database: z.object({
    client: z.enum(['sqlite', 'postgres']),
    /**
     * knex's SQLite client: node-sqlite3 (asynchronous, on libuv's thread
     * pool), better-sqlite3 (synchronous, in-thread), or `auto`:
     * the API on better-sqlite3 (its writer on a thread of its own), node-sqlite3 for the rest, one library per file
     * in a process (src/db/knex.ts sqliteRunner, sqliteLibraryOf).
     */
    sqliteDriver: z.enum(['auto', 'sqlite3', 'better-sqlite3']),
    dir: z.string().min(1),
    url: z.string(),
    statementTimeoutMs: positiveInt,
    /** PostgreSQL: start even when the session's synchronous_commit is off or local (commits acknowledged before they are durable). */
    allowAsyncCommit: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]),
    /**
     * PostgreSQL: each service's own role, used when its password is set. The
     * service connects as it (database.url's host and database); `warren
     * migrate` connects with database.url (the database owner), creates or
     * updates the roles, and migrates each schema as its role so that the role
     * owns it. With no passwords every process uses database.url as it is.
     */
    roles: z.record(z.string(), databaseRole),
  }),
  outbox: z.object({ maxBacklog: positiveInt, retainSentHours: z.coerce.number().nonnegative() }),
  relay: z.object({
    batchSize: positiveInt,
    pollIntervalMs: positiveInt,
    claimTimeoutMs: positiveInt,
    publishTimeoutMs: positiveInt,
  }),
  worker: z.object({
    prefetch: z.coerce.number().int().min(1).max(65535),
    // Far below RabbitMQ's 30-minute consumer acknowledgement timeout.
    handlerTimeoutMs: z.coerce
      .number()
      .int()
      .positive()
      .max(20 * 60 * 1000),
    // A failed batch's messages are acked or retried within this of their arrival: far below the consumer timeout too.
    batchDeadlineMs: z.coerce
      .number()
      .int()
      .positive()
      .max(20 * 60 * 1000),
    // GET /healthz and /readyz of `warren worker`; 0 = none.
    healthPort: z.coerce.number().int().min(0).max(65535),
  }),
  retry: z.object({ attempts: z.record(z.string(), z.coerce.number().int().min(1).max(100)) }),
  /**
   * The timeline service: where `warren worker timeline` serves GET
   * /timelines/:userId (to the API only), how many entries each home
   * timeline keeps, and how the API calls it: `urls` (a list, or one
   * comma-separated string from the environment) and a deadline per call.
   * The same call over gRPC on `grpcPort` (0 = none); the API uses it, at
   * `grpcUrls`, when `protocol` is `grpc` (docs/PROTOCOLS.md).
   */
  timeline: z.object({
    host: z.string().min(1),
    port: z.coerce.number().int().min(0).max(65535),
    grpcPort: z.coerce.number().int().min(0).max(65535),
    protocol: z.enum(['rest', 'grpc']),
    maxEntries: z.coerce.number().int().min(1).max(100000),
    deadlineMs: positiveInt,
    /** How often the API resolves the URLs' host names again (each address is an instance). */
    discoveryIntervalMs: positiveInt,
    urls: urlList(/^https?$/, 'must name at least one timeline service URL'),
    /** The instances' gRPC addresses as http://host:port (plaintext HTTP/2), found like `urls`. */
    grpcUrls: urlList(/^http$/, 'must name at least one timeline gRPC URL'),
  }),
  inbox: z.object({ retentionDays: z.coerce.number().positive() }),
  auth: z.object({ tokenTtlDays: z.coerce.number().positive(), maxTokens: positiveInt }),
  /** Open notification streams an API process keeps, per user and in all; past either, 429. */
  streams: z.object({ maxPerUser: positiveInt, maxPerProcess: positiveInt }),
  idempotency: z.object({ ttlHours: z.coerce.number().positive() }),
  /** `warren console`: where it listens (127.0.0.1 unless configured), and the most messages one replay or discard may take. */
  console: z.object({
    host: z.string().min(1),
    port: z.coerce.number().int().min(0).max(65535),
    maxPerAction: positiveInt,
  }),
  supervisor: z.object({ restartMinMs: positiveInt, restartMaxMs: positiveInt, stopTimeoutMs: positiveInt }),
  log: z.object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) }),
  /**
   * OpenTelemetry tracing, off by default. `enabled` turns it on; so does an
   * OTLP endpoint in the standard OTEL_* variables, which also say where the
   * spans go and how they are sampled (src/observability/tracingStart.ts).
   */
  otel: z.object({ enabled: z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]) }),
});

export type Config = z.infer<typeof baseSchema>;

/** The schema for a deployment of these services: the base schema, its per-service keys checked against the catalogue, and the rules across keys. */
export function configSchemaFor(catalogue: ServiceCatalogue) {
  return baseSchema.superRefine((c, ctx) => {
    // A misspelt service would configure nothing, and leave the real one on its defaults without a word.
    const perService: [string[], Record<string, unknown>, readonly string[]][] = [
      [['amqp', 'users'], c.amqp.users, catalogue.brokerUsers],
      [['database', 'roles'], c.database.roles, catalogue.databaseServices],
    ];
    for (const [section, entries, known] of perService) {
      for (const key of Object.keys(entries)) {
        if (!known.includes(key))
          ctx.addIssue({
            code: 'custom',
            path: [...section, key],
            message: `${key} is not a service of Warren (${known.join(', ')})`,
            params: { unknownKey: true },
          });
      }
    }
    if (c.database.client === 'postgres' && !/^postgres(ql)?:\/\//.test(c.database.url)) {
      ctx.addIssue({ code: 'custom', path: ['database', 'url'], message: 'must be a postgres:// URL when database.client is postgres' });
    }
    // A worker's SIGTERM waits out its handlers, then closes: a supervisor that kills it sooner turns a clean stop into a crash.
    if (c.supervisor.stopTimeoutMs <= c.worker.handlerTimeoutMs + WORKER_STOP_MARGIN_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['supervisor', 'stopTimeoutMs'],
        message: `must be more than worker.handlerTimeoutMs + ${WORKER_STOP_MARGIN_MS} ms (${c.worker.handlerTimeoutMs + WORKER_STOP_MARGIN_MS}), the time a worker may take to stop`,
      });
    }
    // A batch may fail only at its timeout; its messages should then still have time to run alone, one at least.
    if (c.worker.batchDeadlineMs < 2 * c.worker.handlerTimeoutMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['worker', 'batchDeadlineMs'],
        message: `must be at least 2 × worker.handlerTimeoutMs (${2 * c.worker.handlerTimeoutMs}): a batch that fails at its timeout must leave time to run a message alone`,
      });
    }
    // A claim that expires while its batch may still be waiting for confirms lets another relay publish the same rows.
    if (c.relay.claimTimeoutMs <= c.relay.publishTimeoutMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['relay', 'claimTimeoutMs'],
        message: `must be more than relay.publishTimeoutMs (${c.relay.publishTimeoutMs} ms), or another relay takes over rows still being published`,
      });
    }
    // Two services under one role could read and write each other's tables.
    const roles = Object.entries(c.database.roles);
    for (const [i, [service, role]] of roles.entries()) {
      if (!role.password) continue;
      if (c.database.client !== 'postgres') {
        ctx.addIssue({
          code: 'custom',
          path: ['database', 'roles', service, 'password'],
          message: 'is set, but database.client is not postgres: service roles are PostgreSQL roles',
        });
      }
      const twin = roles.slice(0, i).find(([, other]) => other.password && other.username === role.username);
      if (twin) {
        ctx.addIssue({
          code: 'custom',
          path: ['database', 'roles', service, 'username'],
          message: `is ${role.username}, the role of ${twin[0]} too: each service needs a role of its own`,
        });
      }
    }
    // A URL alone would otherwise be ignored, and every host would quietly write a SQLite file of its own.
    if (c.database.client === 'sqlite' && c.database.url !== '') {
      ctx.addIssue({
        code: 'custom',
        path: ['database', 'client'],
        message: 'is sqlite, but database.url is set: set the client to postgres to use that URL, or clear the URL',
      });
    }
  });
}

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    detail: string,
  ) {
    super(`config: ${key}: ${detail}`);
    this.name = 'ConfigError';
  }
}

type Json = { [key: string]: unknown };

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k] as Json, v) : v;
  }
  return out;
}

function readJson(file: string): Json {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    if (!isObject(parsed)) throw new Error('not a JSON object');
    return parsed;
  } catch (err) {
    throw new ConfigError(path.basename(file), (err as Error).message);
  }
}

/** `http.port` -> `WARREN_HTTP_PORT`, `amqp.managementUrl` -> `WARREN_AMQP_MANAGEMENT_URL`. */
export function envName(keyPath: string[]): string {
  return 'WARREN_' + keyPath.map((k) => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

function applyEnv(node: Json, env: NodeJS.ProcessEnv, prefix: string[] = []): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) {
    const keyPath = [...prefix, k];
    if (isObject(v)) {
      out[k] = applyEnv(v, env, keyPath);
      continue;
    }
    const fromEnv = env[envName(keyPath)];
    out[k] = fromEnv === undefined ? v : fromEnv;
  }
  return out;
}

export const projectRoot = path.resolve(__dirname, '..', '..');

/**
 * The defaults the catalogue gives, under config/default.json: each
 * service's broker user (`warren-<key>`) and PostgreSQL role
 * (`warren_<service>`), without passwords, and each worker queue's retry
 * attempts. Every key is there, so the environment can set any of them.
 */
function catalogueDefaults(catalogue: ServiceCatalogue): Json {
  return {
    amqp: { users: Object.fromEntries(catalogue.brokerUsers.map((user) => [user, { username: `warren-${user}`, password: '' }])) },
    database: { roles: Object.fromEntries(catalogue.databaseServices.map((service) => [service, { username: `warren_${service}`, password: '' }])) },
    retry: { attempts: { ...catalogue.retryAttempts } },
  };
}

function processDefaults({ prefetch, handlerTimeoutMs }: ProcessDefaults): Json {
  return { worker: { ...(prefetch === undefined ? {} : { prefetch }), ...(handlerTimeoutMs === undefined ? {} : { handlerTimeoutMs }) } };
}

/**
 * WARREN_ variables that name no setting and are still no mistake: read by
 * the loader itself, the logger, the build info and the supervisor, and the
 * test harness's and CI's own (WARREN_TEST_*, WARREN_REQUIRE_*, and
 * scripts/pgbouncer.sh's WARREN_PGBOUNCER_*), which reach every process they
 * start because children inherit the environment.
 */
export const VARIABLES_NOT_SETTINGS: { readonly names: readonly string[]; readonly prefixes: readonly string[] } = {
  names: ['WARREN_CONFIG', 'WARREN_LOG_FORMAT', 'WARREN_COMMIT', 'WARREN_SUPERVISED'],
  prefixes: ['WARREN_TEST_', 'WARREN_REQUIRE_', 'WARREN_PGBOUNCER_'],
};

/**
 * The key paths of `node` that `schema` has no setting for. A per-service
 * section (a record) checks the keys inside each entry; the entries' names are
 * the catalogue's to check (configSchemaFor), with their own line.
 */
function unknownKeys(node: unknown, schema: z.ZodType, prefix: string[] = []): string[] {
  if (!isObject(node)) return [];
  if (schema instanceof z.ZodObject) {
    const shape = schema.shape as Record<string, z.ZodType>;
    return Object.entries(node).flatMap(([k, v]) => (Object.hasOwn(shape, k) ? unknownKeys(v, shape[k]!, [...prefix, k]) : [[...prefix, k].join('.')]));
  }
  if (schema instanceof z.ZodRecord) return Object.entries(node).flatMap(([k, v]) => unknownKeys(v, schema.valueType as z.ZodType, [...prefix, k]));
  return [];
}

/** The variable of every setting there is (every leaf of the merged files, which hold every key). */
function settingVariables(node: Json, prefix: string[] = []): string[] {
  return Object.entries(node).flatMap(([k, v]) => (isObject(v) ? settingVariables(v, [...prefix, k]) : [envName([...prefix, k])]));
}

/**
 * A misspelt key or variable would leave its setting on the default without a
 * word (a WARREN_AMQP_URLL, and the process talks to the default broker), so
 * it stops the process like any bad value, with one line naming them all.
 */
function refuseUnknown(sources: readonly (readonly [string, Json])[], merged: Json, env: NodeJS.ProcessEnv): void {
  const keys = sources.flatMap(([source, node]) => unknownKeys(node, baseSchema).map((key) => `${key} (${source})`));
  if (keys.length) throw new ConfigError(keys.join(', '), 'no such setting (misspelt? config/default.json has every key)');
  const known = new Set(settingVariables(merged));
  const { names, prefixes } = VARIABLES_NOT_SETTINGS;
  const variables = Object.keys(env)
    .filter((name) => name.startsWith('WARREN_') && !known.has(name) && !names.includes(name) && !prefixes.some((p) => name.startsWith(p)))
    .sort();
  if (variables.length)
    throw new ConfigError(
      variables.join(', '),
      "names no setting (misspelt? a setting's variable is its key in upper snake case: http.port is WARREN_HTTP_PORT)",
    );
}

/**
 * Loads and validates the configuration: the catalogue's defaults, then
 * default.json (then this process's own defaults, a worker's declared
 * prefetch and timeout), then <NODE_ENV>.json, the environment, and
 * `WARREN_CONFIG`, a JSON object merged last (handy for tests and
 * containers). src/services.ts's loadConfig calls it with Warren's services.
 * A key no setting has, in a file or WARREN_CONFIG, or a WARREN_ variable
 * that names none, stops it (see refuseUnknown).
 */
export function loadConfigFor(
  catalogue: ServiceCatalogue,
  env: NodeJS.ProcessEnv = process.env,
  configDir = path.join(projectRoot, 'config'),
  own: ProcessDefaults = {},
): Config {
  const defaults = readJson(path.join(configDir, 'default.json'));
  const sources: [string, Json][] = [['default.json', defaults]];
  let merged = deepMerge(catalogueDefaults(catalogue), defaults);
  merged = deepMerge(merged, processDefaults(own));
  const nodeEnv = env.NODE_ENV;
  if (nodeEnv && fs.existsSync(path.join(configDir, `${nodeEnv}.json`))) {
    const forEnv = readJson(path.join(configDir, `${nodeEnv}.json`));
    sources.push([`${nodeEnv}.json`, forEnv]);
    merged = deepMerge(merged, forEnv);
  }
  let extra: unknown;
  if (env.WARREN_CONFIG) {
    try {
      extra = JSON.parse(env.WARREN_CONFIG);
    } catch (err) {
      throw new ConfigError('WARREN_CONFIG', `not valid JSON (${(err as Error).message})`);
    }
    if (!isObject(extra)) throw new ConfigError('WARREN_CONFIG', 'must be a JSON object');
    sources.push(['WARREN_CONFIG', extra]);
  }
  refuseUnknown(sources, merged, env);
  merged = applyEnv(merged, env);
  if (isObject(extra)) merged = deepMerge(merged, extra);
  const result = configSchemaFor(catalogue).safeParse(merged);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = issue.path.join('.');
    // The environment sets only keys that exist: an unknown one came from a file or WARREN_CONFIG.
    const unknownKey = issue.code === 'custom' && issue.params?.unknownKey === true;
    const envHint = !unknownKey && issue.path.every((p) => typeof p === 'string') ? ` (${envName(issue.path as string[])})` : '';
    throw new ConfigError(key + envHint, issue.message);
  }
  return resolvePaths(result.data);
}

function resolvePaths(c: Config): Config {
  return {
    ...c,
    amqp: { ...c.amqp, definitionsFile: path.resolve(projectRoot, c.amqp.definitionsFile) },
    database: { ...c.database, dir: path.resolve(projectRoot, c.database.dir) },
  };
}

/** A key of amqp.users: `api`, or a worker's declared broker user. */
export type BrokerService = string;

/**
 * The AMQP URL a service connects with (every node of amqp.url's list,
 * comma-separated): its own least-privilege user when a password is
 * configured, else amqp.url's credentials (local development).
 */
export function serviceAmqpUrl(config: Config, service: BrokerService): string {
  const own = config.amqp.users[service];
  if (!own) throw new ConfigError(`amqp.users.${service}`, `${service} is not a service of Warren (${Object.keys(config.amqp.users).join(', ')})`);
  const urls = parseNodeList(config.amqp.url).map((entry) => new URL(entry));
  for (const url of urls) {
    if (own.password) {
      url.username = encodeURIComponent(own.username);
      url.password = encodeURIComponent(own.password);
    }
    const user = decodeURIComponent(url.username || 'guest');
    if (user === 'guest' && !config.amqp.allowGuest) {
      throw new ConfigError(
        `amqp.users.${service}.password (${envName(['amqp', 'users', service, 'password'])})`,
        'required: guest is for local development only (amqp.allowGuest is false)',
      );
    }
  }
  return urls.map((url) => url.toString()).join(',');
}

/** Passwords of the service users that configuration sets, by RabbitMQ user name (for `topology apply`). */
export function servicePasswords(config: Config): Record<string, string> {
  const out: Record<string, string> = {};
  for (const u of [...Object.values(config.amqp.users), config.amqp.monitor]) if (u.password) out[u.username] = u.password;
  return out;
}

/** The vhost named by the AMQP URL's path (`/warren` -> `warren`, none -> `/`); of a node list, its first node's (they all name one). */
export function vhostOf(amqpUrl: string): string {
  const p = new URL(parseNodeList(amqpUrl)[0] ?? amqpUrl).pathname;
  return p && p !== '/' ? decodeURIComponent(p.slice(1)) : '/';
}
