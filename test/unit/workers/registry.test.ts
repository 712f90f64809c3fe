import { expect } from 'chai';
import { workers } from '../../../src/workers/registry';

describe('worker registry', () => {
  it('registers each worker under the name it answers to', () => {
    for (const [key, worker] of Object.entries(workers)) expect(worker.name, key).to.equal(key);
  });

  it('gives each worker a queue of its own', () => {
    const queues = Object.values(workers).map((w) => w.queue);
    expect(new Set(queues).size).to.equal(queues.length);
  });
});
