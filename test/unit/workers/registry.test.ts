import path from 'node:path';
import { expect } from 'chai';
import { projectRoot } from '../../../src/config';
import { loadDefinitions, RETURN_EXCHANGE, workQueues } from '../../../src/topology/definitions';
import { declaredWorkers, isWorkerName, workerNames, workers } from '../../../src/workers/registry';

describe('worker registry', () => {
  it('registers each worker under the name it answers to', () => {
    for (const [key, worker] of Object.entries(workers)) expect(worker.name, key).to.equal(key);
  });

  it('gives each worker a queue of its own', () => {
    const queues = Object.values(workers).map((w) => w.queue);
    expect(new Set(queues).size).to.equal(queues.length);
  });

  it('knows its workers by name, and nothing else', () => {
    expect(workerNames).to.deep.equal(['analytics', 'notifications', 'timeline']);
    for (const name of workerNames) expect(isWorkerName(name), name).to.equal(true);
    for (const name of ['api', 'analytic', 'toString', '__proto__', '']) expect(isWorkerName(name), name).to.equal(false);
  });

  /** These become a configuration key, an environment variable, a file, a PostgreSQL schema and role, a RabbitMQ user. */
  it('gives each worker a broker user and a database of its own, named as every one of those can hold', () => {
    const users = declaredWorkers.map((w) => w.brokerUser);
    const databases = declaredWorkers.map((w) => w.database.service);
    for (const names of [users, databases]) {
      expect(new Set([...names, 'api']).size, names.join(', ')).to.equal(names.length + 1);
      for (const name of names) expect(name).to.match(/^[a-z][a-z0-9_]{0,40}$/);
    }
    for (const w of declaredWorkers) {
      expect(Object.keys(w.database.migrations), w.name).to.not.be.empty;
      expect(w.defaults.retryAttempts, w.name).to.be.within(1, 100);
    }
  });

  it('declares only what the definitions file has: its work queue, its bindings and its broker user', () => {
    const defs = loadDefinitions(path.join(projectRoot, 'rabbitmq', 'definitions.json'));
    for (const w of declaredWorkers) {
      expect(workQueues(defs), w.name).to.include(w.queue);
      const bound = defs.bindings
        .filter((b) => b.destination === w.queue && b.source !== RETURN_EXCHANGE)
        .map((b) => ({ exchange: b.source, routingKey: b.routing_key }));
      expect(bound, w.name).to.deep.equal(w.bindings);
      expect(
        defs.users.map((u) => u.name),
        w.name,
      ).to.include(`warren-${w.brokerUser}`);
    }
  });
});
