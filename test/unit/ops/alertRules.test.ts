/** @file
 * ops/prometheus/warren-alerts.yml through Prometheus's own checker: the
 * rules parse (`promtool check rules`) and fire on the series of
 * warren-alerts.test.yml as it expects, and stay quiet where it expects
 * (`promtool test rules`). Runs where promtool is found (PROMTOOL, or on
 * PATH: Debian's `prometheus` package has it); skipped, and said so, elsewhere.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import { projectRoot } from '../../../src/config';

function promtool(): string | undefined {
  if (process.env.PROMTOOL) return process.env.PROMTOOL;
  try {
    return execFileSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

describe('ops: Prometheus alert rules', function () {
  const dir = path.join(projectRoot, 'ops', 'prometheus');
  const bin = promtool();

  before(function () {
    if (!bin) this.skip();
  });

  it('parse as Prometheus rules: four alerts', function () {
    const run = spawnSync(bin!, ['check', 'rules', path.join(dir, 'warren-alerts.yml')], { encoding: 'utf8' });
    expect(run.status, run.stdout + run.stderr).to.equal(0);
    expect(run.stdout).to.include('SUCCESS: 4 rules found');
  });

  it('fire on DLQ growth, old outbox events and a queue without consumers, and not otherwise', function () {
    const run = spawnSync(bin!, ['test', 'rules', path.join(dir, 'warren-alerts.test.yml')], { encoding: 'utf8', cwd: dir });
    expect(run.status, run.stdout + run.stderr).to.equal(0);
    expect(run.stdout).to.include('SUCCESS');
  });
});
