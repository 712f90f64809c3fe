import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sqlite3 from 'sqlite3';

/** What the figures were taken on. */
export interface Machine {
  cpus: number;
  cpuModel: string;
  memory: string;
  os: string;
  node: string;
  rabbitmq: string;
  postgres: string;
  redis: string;
  sqlite: string;
  loadAtStart: string;
  /** The commit measured, and whether src/ had uncommitted changes. */
  warren: string;
}

function tryRun(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

function describeCommit(): string {
  const root = path.join(__dirname, '..', '..', '..');
  const head = tryRun('git', ['-C', root, 'rev-parse', '--short', 'HEAD']);
  if (!head) return 'unknown commit';
  const dirty = tryRun('git', ['-C', root, 'status', '--porcelain', '--', 'src', 'config', 'rabbitmq']);
  return dirty ? `${head} with uncommitted changes in src/, config/ or rabbitmq/` : head;
}

export async function describeMachine(managementUrl: string): Promise<Machine> {
  let rabbitmq = 'unknown';
  try {
    const url = new URL(managementUrl);
    const auth = Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString('base64');
    const res = await fetch(`${url.origin}/api/overview`, { headers: { authorization: `Basic ${auth}` } });
    rabbitmq = ((await res.json()) as { rabbitmq_version?: string }).rabbitmq_version ?? rabbitmq;
  } catch {
    // reported as unknown
  }
  const pg = tryRun('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-Atc', 'SHOW server_version']);
  const redis = /redis_version:(\S+)/.exec(tryRun('redis-cli', ['info', 'server']))?.[1] ?? 'unknown';
  return {
    cpus: Number(tryRun('nproc', [])) || os.cpus().length,
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    memory: `${Math.round(os.totalmem() / 2 ** 30)} GiB`,
    os: `${os.type()} ${os.release()}`,
    node: process.versions.node,
    rabbitmq,
    postgres: pg ? `PostgreSQL ${pg.split(' ')[0]}` : 'PostgreSQL (version unknown)',
    redis,
    sqlite: (sqlite3 as unknown as { VERSION: string }).VERSION,
    loadAtStart: os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' / '),
    warren: describeCommit(),
  };
}

/** The installed version of a package of this project (read from its package.json). */
export function packageVersion(name: string): string {
  try {
    const file = path.join(__dirname, '..', '..', '..', 'node_modules', name, 'package.json');
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
