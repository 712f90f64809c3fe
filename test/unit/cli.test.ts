/** @file `warren --version` (and `-V`): the version of package.json and the commit, from the real CLI. */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { projectRoot } from '../../src/config';

const cli = path.join(projectRoot, 'bin', 'warren');
const { version } = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string };

function warren(args: string[], env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [cli, ...args], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8', timeout: 20_000 });
}

describe('cli: warren --version', () => {
  it('prints the version and the commit it was built from, and exits 0', () => {
    for (const flag of ['--version', '-V']) {
      const run = warren([flag], { WARREN_COMMIT: '0123456789abcdef0123456789abcdef01234567' });
      expect(run.status, run.stderr).to.equal(0);
      expect(run.stdout).to.equal(`warren ${version} (commit 0123456789abcdef0123456789abcdef01234567)\n`);
    }
  });

  it('says the commit is unknown when nobody said, and needs no valid configuration to answer', () => {
    const run = warren(['--version'], { WARREN_AMQP_URLL: 'misspelt', WARREN_HTTP_PORT: 'eighty' });
    expect(run.status, run.stderr).to.equal(0);
    expect(run.stdout).to.equal(`warren ${version} (commit unknown)\n`);
  });

  it('lists the flag in the help', () => {
    expect(warren(['--help'], {}).stdout).to.match(/-V, --version +print the version and the commit it was built from/);
  });
});
