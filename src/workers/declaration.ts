import type { Knex } from 'knex';
import type { BrokerConnection } from '../broker/connection';
import type { Config } from '../config';
import type { WorkerDefinition } from '../consume/handler';
import type { MessageType } from '../domain/messages';
import type { Logger } from '../log';

/** What a worker process offers a worker to build the collaborators its handler needs beyond a transaction. */
export interface WorkerResources {
  /** The process's publishing connection (never the consuming one: a memory alarm blocks publishers, acks included). */
  publishConnection: BrokerConnection;
  /** The process's configuration (the timeline's cap, say). */
  config: Config;
  log: Logger;
}

/** What a worker that serves HTTP of its own gets to answer with. */
export interface WorkerHttpResources {
  /** The worker's own database. */
  db: Knex;
  config: Config;
  log: Logger;
}

/**
 * A worker's own routes beside its probes: `undefined` for a path that is
 * not one of them (404), else its answer, a JSON body with its status.
 */
export type WorkerRoutes = (method: string, path: string, query: URLSearchParams) => Promise<{ status: number; body: unknown }> | undefined;

/**
 * A worker that is also a service others call (the timeline): where it
 * listens, in place of worker.healthPort, with its probes and metrics on
 * the same port, and what it serves there.
 */
export interface WorkerHttp {
  /** The configured listener (0 = none). */
  listen(config: Config): { host: string; port: number };
  /** The environment of child `index` of `--processes N`: its own port (the configured one + index). */
  childEnv(config: Config, index: number): Record<string, string>;
  routes(resources: WorkerHttpResources): WorkerRoutes;
  /**
   * Listeners of its own beside the HTTP port (the timeline's gRPC), started
   * with it and closed after the consumer stopped; undefined when none is
   * configured. Rejects when it cannot listen.
   */
  serveMore?(resources: WorkerHttpResources): Promise<{ close(): Promise<void> } | undefined>;
}

/** The worker the consumer runs, with its collaborators, and how to close them once the consumer has stopped. */
export interface WorkerWithCollaborators<T extends MessageType> {
  worker: WorkerDefinition<T>;
  close(): Promise<void>;
}

/**
 * Everything Warren needs to know of one worker, in one place: the consumer's
 * contract (name, queue, bindings, handled types, handler) and what the
 * process around it takes from it. src/workers/registry.ts lists the
 * declarations; the CLI, `warren start`, configuration, migrations and the
 * test harness derive from that list, so a new worker is its declaration
 * file, its migrations, its topology in rabbitmq/definitions.json and one
 * line in the registry.
 */
export interface WorkerDeclaration<T extends MessageType = MessageType> extends WorkerDefinition<T> {
  /**
   * The database it owns and is the only writer of: data/<service>.sqlite or
   * the PostgreSQL schema <service>, its role under database.roles.<service>
   * (`warren_<service>` by default), made by these migrations (`warren migrate`).
   */
  database: { service: string; migrations: Record<string, Knex.Migration> };
  /**
   * Its broker user, configured under amqp.users.<brokerUser> (RabbitMQ user
   * `warren-<brokerUser>` by default, whose permissions are in the definitions file).
   */
  brokerUser: string;
  defaults: {
    /** retry.attempts.<queue> unless configuration sets it. */
    retryAttempts: number;
    /**
     * This worker's worker.prefetch and worker.handlerTimeoutMs in place of
     * config/default.json's; config/<NODE_ENV>.json, the environment and
     * WARREN_CONFIG still override them.
     */
    prefetch?: number;
    handlerTimeoutMs?: number;
  };
  /**
   * Builds what its handler needs beyond a transaction (notifications: the
   * live-notification publisher) and returns the worker that uses it. Without
   * it the declaration itself is the worker the consumer runs.
   */
  withCollaborators?(resources: WorkerResources): WorkerWithCollaborators<T>;
  /** Its own HTTP service, when other services call it (src/workers/timelineHttp.ts). */
  http?: WorkerHttp;
}
