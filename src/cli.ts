import { Command, InvalidArgumentError } from 'commander';
import { versionLine } from './build';
import { servicePasswords, vhostOf, type Config } from './config';
import { loadConfigOrExit } from './services';
import { createLogger } from './log';
import { exitWithLine } from './shutdown';
import type { Tracing } from './observability/tracing';
import { startTracingFor, TracingSetupError } from './observability/tracingStart';
import { isWorkerName, workerNames, workers, type WorkerName } from './workers/registry';

/**
 * The `warren` command. Each subcommand loads and validates the
 * configuration first (a bad value stops it with one line naming the key).
 */
const program = new Command();
program
  .name('warren')
  .description('RabbitMQ work queues and pub/sub: API, workers, topology and dead-letter tooling')
  .version(versionLine(), '-V, --version', 'print the version and the commit it was built from')
  .showHelpAfterError();

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** The tracing SDK, started before the service (none when tracing is off); a setting it cannot honour stops the process with one line. */
async function startTracingOrExit(config: Config, service: string): Promise<Tracing | undefined> {
  try {
    return await startTracingFor(config, service);
  } catch (err) {
    if (err instanceof TracingSetupError) exitWithLine(`warren ${service.replace('-', ' ')}: tracing: ${err.message}`);
    throw err;
  }
}

/** A worker of the registry, by its name. */
function workerName(value: string): WorkerName {
  if (!isWorkerName(value)) throw new InvalidArgumentError(`must be one of ${workerNames.join(', ')}`);
  return value;
}

program
  .command('api')
  .description('run the HTTP API and the outbox relay')
  .action(async () => {
    const config = loadConfigOrExit();
    const tracing = await startTracingOrExit(config, 'api');
    const { runApi } = await import('./api/server.js');
    await runApi(config, tracing);
  });

program
  .command('worker')
  .description('run a worker (competing consumer); --processes N runs N supervised processes')
  .argument('<name>', `one of ${workerNames.join(', ')}`, workerName)
  .option('-p, --processes <n>', 'number of worker processes', positiveInt, 1)
  .action(async (name: WorkerName, opts: { processes: number }) => {
    const config = loadConfigOrExit(workers[name]);
    if (opts.processes > 1) {
      const { supervise } = await import('./supervisor.js');
      const children = Array.from({ length: opts.processes }, (_, i) => ({
        name: `worker ${name} #${i + 1}`,
        args: ['worker', name],
        env: workerChildEnv(config, name, i),
      }));
      process.exit(await supervise(children, { log: createLogger('supervisor', config.log.level), ...config.supervisor }));
    }
    const tracing = await startTracingOrExit(config, `worker-${name}`);
    const { runWorker } = await import('./workers/runner.js');
    await runWorker(config, name, tracing);
  });

program
  .command('migrate')
  .description("bring every service's database to the latest version")
  .action(async () => {
    const config = loadConfigOrExit();
    const { migrateAll } = await import('./services.js');
    await migrateAll(config, (line) => console.log(line));
  });

const topology = program.command('topology').description('the broker topology of rabbitmq/definitions.json');
topology
  .command('apply')
  .description('declare exchanges, queues, bindings and policies through the management API, then wait until they are visible')
  .action(async () => {
    const config = loadConfigOrExit();
    await applyTopologyOrExit(config);
  });
topology
  .command('check')
  .description('compare the broker with the definitions: every missing or different exchange, queue, binding, policy and permission; exits 1 on any drift')
  .action(() =>
    operatorAction(async (config) => {
      process.exitCode = await (await import('./ops/topologyCommands.js')).topologyCheck(config);
    }),
  );

async function applyTopologyOrExit(config: ReturnType<typeof loadConfigOrExit>): Promise<void> {
  const { brokerPreflight } = await import('./preflight.js');
  const unreachable = await brokerPreflight(config);
  if (unreachable) exitWithLine(unreachable);
  const { applyTopology, loadDefinitions, retargetDefinitions } = await import('./topology/definitions.js');
  const vhost = vhostOf(config.amqp.url);
  const defs = retargetDefinitions(loadDefinitions(config.amqp.definitionsFile), vhost);
  try {
    await applyTopology({
      managementUrl: config.amqp.managementUrl,
      vhost,
      defs,
      passwords: servicePasswords(config),
      log: createLogger('topology', config.log.level),
    });
  } catch (err) {
    exitWithLine(`warren topology apply: ${(err as Error).message}`);
  }
  console.log(`topology applied to vhost ${vhost}`);
}

/**
 * Each supervised worker serves /healthz, /readyz and /metrics on a port of
 * its own: the configured one, then the next ones (0 keeps them off).
 */
function workerHealthPort(config: ReturnType<typeof loadConfigOrExit>, index: number): Record<string, string> {
  return config.worker.healthPort > 0 ? { WARREN_WORKER_HEALTH_PORT: String(config.worker.healthPort + index) } : {};
}

/** The environment of child `index` of `warren worker <name> --processes N`: a worker serving HTTP of its own (the timeline) takes the next port of its own. */
function workerChildEnv(config: ReturnType<typeof loadConfigOrExit>, name: WorkerName, index: number): Record<string, string> {
  const own = workers[name].http;
  return own ? own.childEnv(config, index) : workerHealthPort(config, index);
}

/** The URL of the timeline instance `warren start` runs, as the API on this host reaches it (on its gRPC port for `grpc`). */
function timelineUrlOf(config: ReturnType<typeof loadConfigOrExit>, protocol: 'rest' | 'grpc' = 'rest'): string {
  const host = config.timeline.host === '0.0.0.0' || config.timeline.host === '::' ? '127.0.0.1' : config.timeline.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${protocol === 'grpc' ? config.timeline.grpcPort : config.timeline.port}`;
}

program
  .command('start')
  .description('development supervisor: apply the topology, run migrations, then the API, every worker and the operator console')
  .action(async () => {
    const config = loadConfigOrExit();
    await applyTopologyOrExit(config);
    const { migrateAll } = await import('./services.js');
    await migrateAll(config, (line) => console.log(`migrate ${line}`));
    const { supervise } = await import('./supervisor.js');
    const children = [
      // The API asks the one timeline instance started here (a worker with a port of its own takes it from configuration).
      {
        name: 'api',
        args: ['api'],
        env: {
          WARREN_TIMELINE_URLS: timelineUrlOf(config),
          ...(config.timeline.grpcPort > 0 ? { WARREN_TIMELINE_GRPC_URLS: timelineUrlOf(config, 'grpc') } : {}),
        },
      },
      ...workerNames.map((w, i) => ({ name: `worker ${w}`, args: ['worker', w], env: workers[w].http ? {} : workerHealthPort(config, i) })),
      // The operator console on console.host:console.port, indexing parks as they come (warren.parked.index).
      { name: 'console', args: ['console'], env: {} },
    ];
    process.exit(await supervise(children, { log: createLogger('supervisor', config.log.level), ...config.supervisor }));
  });

program
  .command('status')
  .description('queues (depth, consumers, rates), parked messages per DLQ, and the outbox backlog')
  .option('--json', 'the same as one JSON object')
  .action((opts: { json?: boolean }) =>
    operatorAction(async (config) => {
      const { collectStatus, renderStatus } = await import('./ops/status.js');
      const report = await collectStatus(config);
      console.log(opts.json ? JSON.stringify(report, null, 2) : renderStatus(report));
    }),
  );

/** Runs an operator command; an OperatorError is one line on stderr and its exit code. */
async function operatorAction(run: (config: Config) => Promise<void>): Promise<void> {
  const config = loadConfigOrExit();
  const { OperatorError } = await import('./ops/operatorError.js');
  try {
    await run(config);
  } catch (err) {
    if (err instanceof OperatorError) exitWithLine(err.message, err.exitCode);
    throw err;
  }
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const dlq = program.command('dlq').description("inspect, replay, export and purge a work queue's parked messages (<queue>.dlq)");
dlq
  .command('list')
  .description('parked messages: id, type, kind, attempts, age and reason; they stay parked, in order')
  .argument('<queue>', 'work queue, e.g. analytics.tweets')
  .option('-n, --limit <n>', 'at most this many', positiveInt, 50)
  .option('--json', 'one JSON object per line')
  .action((queue: string, opts: { limit: number; json?: boolean }) =>
    operatorAction(async (config) => (await import('./console/dlqCommands.js')).dlqList(config, queue, opts)),
  );
dlq
  .command('summary')
  .description("parked messages of every DLQ grouped by queue, kind and normalised reason, from the console's index (no DLQ is read)")
  .option('--json', 'one JSON object per group and line')
  .action((opts: { json?: boolean }) => operatorAction(async (config) => (await import('./console/dlqCommands.js')).dlqSummary(config, opts)));
dlq
  .command('replay')
  .description('send parked messages back to the queue they failed in; each leaves the DLQ only once its copy is confirmed')
  .argument('[queue]', 'work queue, e.g. analytics.tweets (with --from-file: only its messages)')
  .option('--from-file <export>', "exactly the messages an export lists (the console's or warren dlq export's) that are still parked")
  .option('--id <messageId>', 'only this message (repeatable)', collect)
  .option('-n, --limit <n>', 'replay at most this many', positiveInt)
  .option('--error <substring>', 'only messages whose error contains this (case-insensitive)')
  .option('--all', 'every parked message')
  .option('--allow-stale', 'also replay messages older than inbox.retentionDays less a margin (their effect may be applied twice)')
  .option('--json', 'print the summary as JSON')
  .action(
    (
      queue: string | undefined,
      opts: { id?: string[]; limit?: number; error?: string; all?: boolean; json?: boolean; allowStale?: boolean; fromFile?: string },
    ) => operatorAction(async (config) => (await import('./console/dlqCommands.js')).dlqReplayCommand(config, queue, opts)),
  );
dlq
  .command('discard')
  .description('delete selected parked messages from the DLQ, with a reason (audited); every other one stays parked, in order')
  .argument('<queue>', 'work queue, e.g. analytics.tweets')
  .option('--id <messageId>', 'only this message (repeatable)', collect)
  .option('--error <substring>', 'only messages whose error contains this (case-insensitive)')
  .requiredOption('--reason <text>', 'why they are discarded (kept in the audit log)')
  .option('--json', 'print the summary as JSON')
  .action((queue: string, opts: { id?: string[]; error?: string; reason: string; json?: boolean }) =>
    operatorAction(async (config) => (await import('./console/dlqCommands.js')).dlqDiscard(config, queue, opts)),
  );
dlq
  .command('export')
  .description('write parked messages (body, properties, headers) to a JSON file; they stay parked')
  .argument('<queue>', 'work queue, e.g. analytics.tweets')
  .requiredOption('-f, --file <file>', 'where to write the JSON')
  .option('-n, --limit <n>', 'at most this many', positiveInt)
  .action((queue: string, opts: { file: string; limit?: number }) =>
    operatorAction(async (config) => (await import('./console/dlqCommands.js')).dlqExport(config, queue, opts)),
  );
dlq
  .command('purge')
  .description('delete every parked message of the queue (asks on a terminal; --yes otherwise)')
  .argument('<queue>', 'work queue, e.g. analytics.tweets')
  .option('-y, --yes', 'really delete every parked message, without asking')
  .action((queue: string, opts: { yes?: boolean }) =>
    operatorAction(async (config) => (await import('./console/dlqCommands.js')).dlqPurge(config, queue, opts)),
  );

const consoleCommand = program
  .command('console')
  .description('run the operator console: parked messages to browse, search, replay and discard, and the audit log (console.host:console.port)')
  .action(async () => {
    const config = loadConfigOrExit();
    const { runConsole } = await import('./console/server.js');
    await runConsole(config);
  });
const consoleToken = consoleCommand.command('token').description("the console's operator tokens");
consoleToken
  .command('create')
  .description('issue an operator token (printed once; kept only as its SHA-256)')
  .requiredOption('--role <role>', 'viewer (reads only) or operator (also replays and discards)', (v: string) => {
    if (v !== 'viewer' && v !== 'operator') throw new InvalidArgumentError('must be viewer or operator');
    return v;
  })
  .option('--name <name>', 'whose token it is, as the audit log names it')
  .action((opts: { role: 'viewer' | 'operator'; name?: string }) =>
    operatorAction(async (config) => (await import('./console/tokenCommands.js')).consoleTokenCreate(config, opts)),
  );
consoleToken
  .command('revoke')
  .description('revoke an operator token by its name or id')
  .argument('<nameOrId>', 'the name (or id) given when it was created')
  .action((nameOrId: string) => operatorAction(async (config) => (await import('./console/tokenCommands.js')).consoleTokenRevoke(config, nameOrId)));

program.parseAsync(process.argv).catch((err: unknown) => {
  exitWithLine(`warren: ${(err as Error).message}`);
});
