import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { projectRoot } from '../../../src/config';

/**
 * scripts/broker-check.sh (run by `npm start`, `npm test`, the fault suite
 * and the benchmarks) probes the broker where Warren is configured to reach
 * it: the host:port of WARREN_AMQP_URL and WARREN_AMQP_MANAGEMENT_URL, not
 * RabbitMQ's usual ports on localhost. Throwaway TCP servers stand in for the broker.
 */
const script = path.join(projectRoot, 'scripts', 'broker-check.sh');

/** Listens on the first port of 4700-4799 that is free, so `close` leaves one nothing listens on. */
async function listenInRange(): Promise<net.Server & { port: number }> {
  for (let port = 4700; port < 4800; port++) {
    const server = net.createServer((socket) => socket.destroy());
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) return Object.assign(server, { port });
  }
  throw new Error('no free port in 4700-4799');
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A port of the range nothing listens on: taken, then given back. */
async function deadPort(): Promise<number> {
  const server = await listenInRange();
  await close(server);
  return server.port;
}

function brokerCheck(env: NodeJS.ProcessEnv): Promise<{ status: number | null; stderr: string }> {
  // Only what the test gives: the run's own broker settings must not leak in.
  const rest = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(WARREN_AMQP_|WARREN_CONFIG$|NODE_ENV$)/.test(k)));
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script], { env: { ...rest, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('exit', (status) => resolve({ status, stderr }));
  });
}

describe('scripts/broker-check.sh', function () {
  this.timeout(20_000);
  const servers: net.Server[] = [];
  afterEach(async function () {
    await Promise.all(servers.splice(0).map(close));
  });

  async function listening(): Promise<number> {
    const server = await listenInRange();
    servers.push(server);
    return server.port;
  }

  it('passes when both configured ports answer, wherever they are', async function () {
    const amqp = await listening();
    const management = await listening();
    const run = await brokerCheck({ WARREN_AMQP_URL: `amqp://u:p@127.0.0.1:${amqp}/warren`, WARREN_AMQP_MANAGEMENT_URL: `http://u:p@127.0.0.1:${management}` });
    expect(run.stderr).to.equal('');
    expect(run.status).to.equal(0);
  });

  it("fails, naming the address, when nothing answers at WARREN_AMQP_URL's port (even with a broker on 5672)", async function () {
    const management = await listening();
    const amqp = await deadPort(); // after: listening() would take the port given back
    const run = await brokerCheck({ WARREN_AMQP_URL: `amqp://127.0.0.1:${amqp}/warren`, WARREN_AMQP_MANAGEMENT_URL: `http://127.0.0.1:${management}` });
    expect(run.status).to.equal(1);
    expect(run.stderr.trim().split('\n')).to.have.length(1);
    expect(run.stderr).to.contain(`127.0.0.1:${amqp} (from WARREN_AMQP_URL)`);
  });

  it("fails, naming the address, when nothing answers at the management URL's port (even with one on 15672)", async function () {
    const amqp = await listening();
    const management = await deadPort();
    const run = await brokerCheck({ WARREN_AMQP_URL: `amqp://127.0.0.1:${amqp}/warren`, WARREN_AMQP_MANAGEMENT_URL: `http://guest:guest@127.0.0.1:${management}/` });
    expect(run.status).to.equal(1);
    expect(run.stderr).to.contain(`management API does not answer at 127.0.0.1:${management} (from WARREN_AMQP_MANAGEMENT_URL)`);
  });

  it('falls back to the configuration when the variables are unset (WARREN_CONFIG over the files)', async function () {
    const amqp = await deadPort();
    const run = await brokerCheck({ WARREN_CONFIG: JSON.stringify({ amqp: { url: `amqp://127.0.0.1:${amqp}/warren` } }) });
    expect(run.status).to.equal(1);
    expect(run.stderr).to.contain(`127.0.0.1:${amqp} (from amqp.url in WARREN_CONFIG)`);
  });
});
