/** @file `warren dlq` commands in the console's audit log, on SQLite: written where the console's database is, nothing created where it is not. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { listAudit } from '../../../src/console/audit';
import { auditCliAction, cliActor } from '../../../src/console/cliAudit';
import { openDatabase } from '../../../src/db/knex';
import { loadConfig, migrateService } from '../../../src/services';

describe("console: warren dlq in the console's audit log", function () {
  let dir = '';
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-cli-audit-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes nothing, and creates no database, on a host without the console', async function () {
    const config = loadConfig({ WARREN_DATABASE_DIR: dir });
    expect(await auditCliAction(config, { action: 'dlq purge', selection: { queue: 'q' }, count: 1, outcome: 'ok', result: {} })).to.equal('');
    expect(fs.readdirSync(dir)).to.deep.equal([]);
  });

  it("writes the command, its selection and result under the operating-system user's name", async function () {
    const config = loadConfig({ WARREN_DATABASE_DIR: dir });
    const db = openDatabase(config, 'console');
    try {
      await migrateService(db, 'console', config);
      const problem = await auditCliAction(config, {
        action: 'dlq replay',
        selection: { queue: 'analytics.tweets', error: 'busy' },
        count: 3,
        outcome: 'ok',
        result: { replayed: 3, skipped: 1, remaining: 1, interrupted: false },
      });
      expect(problem).to.equal('');
      const [entry] = await listAudit(db, { limit: 5 });
      expect(entry).to.deep.include({ actor: cliActor(), role: 'cli', action: 'dlq replay', count: 3, outcome: 'ok' });
      expect(entry!.actor).to.match(/^cli:.+@/);
      expect(entry!.selection).to.deep.equal({ queue: 'analytics.tweets', error: 'busy' });
    } finally {
      await db.destroy();
    }
  });
});
