import type { Knex } from 'knex';
import type { BrokerConnection } from '../broker/connection';
import type { WorkerDefinition } from '../consume/handler';
import type { MessageType } from '../domain/messages';
import type { Logger } from '../log';

/** What a worker process offers a worker to build the collaborators its handler needs beyond a transaction. */
export interface WorkerResources {
  /** The process's publishing connection (never the consuming one: a memory alarm blocks publishers, acks included). */
  publishConnection: BrokerConnection;
  log: Logger;
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
}
