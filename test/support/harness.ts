/** @file
 * What the integration tests and the benchmark share to run real processes
 * on this machine: free ports, the URLs of the local services (each side
 * reads its own environment prefix), and child processes that die with the
 * run, even when it is interrupted.
 */

import type { ChildProcess } from 'node:child_process';
import net from 'node:net';

/** A TCP port nothing listens on right now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

export interface LocalServices {
  managementUrl: string;
  amqpBase: string;
  pgAdminUrl: string;
}

/**
 * The broker's management API, its AMQP base URL (no vhost) and an admin
 * PostgreSQL URL: `<prefix>_MANAGEMENT_URL`, `<prefix>_AMQP_BASE` and
 * `<prefix>_PG_URL` when set, else the services as this machine runs them.
 */
export function localServices(prefix: 'WARREN_TEST' | 'BENCH', env: NodeJS.ProcessEnv = process.env): LocalServices {
  return {
    managementUrl: env[`${prefix}_MANAGEMENT_URL`] ?? 'http://guest:guest@127.0.0.1:15672',
    amqpBase: env[`${prefix}_AMQP_BASE`] ?? 'amqp://guest:guest@127.0.0.1:5672',
    pgAdminUrl: env[`${prefix}_PG_URL`] ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  };
}

/** Every child still running when the run exits is killed with it. */
const everyChild = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of everyChild) child.kill('SIGKILL');
});

/** A child process of a test run or a benchmark: its exit, a stop that ends in SIGKILL, and nothing left behind. */
export class ChildHandle {
  exitCode: number | null | undefined;
  private readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    private readonly stopTimeoutMs: number,
  ) {
    everyChild.add(child);
    this.exited = new Promise((resolve) =>
      child.on('exit', (code) => {
        everyChild.delete(child);
        this.exitCode = code;
        resolve(code);
      }),
    );
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** SIGTERM, then the exit code (SIGKILL after `timeoutMs`). */
  async stop(timeoutMs = this.stopTimeoutMs): Promise<number | null> {
    if (!this.running) return this.exitCode ?? null;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  kill9(): Promise<number | null> {
    this.child.kill('SIGKILL');
    return this.exited;
  }

  waitExit(): Promise<number | null> {
    return this.exited;
  }
}
