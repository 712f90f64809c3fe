import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { openDatabase } from '../../../src/db/knex';
import { migrateService, migrationSourceFor, loadConfig } from '../../../src/services';
import { STREAM_COUNTERS_TABLE } from '../../../src/db/migrations/notifications';
import { newId } from '../../../src/domain/ids';
import { nextStreamPosition } from '../../../src/workers/notifications';

describe('notifications migration 002_stream_order', () => {
  let dir: string;
  let db: Knex;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-migration-'));
  });
  after(async () => {
    await db?.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("gives the rows stored before it their stream positions in id order, per user, and each user's counter the last", async () => {
    const config = loadConfig({ WARREN_DATABASE_DIR: dir });
    db = openDatabase(config, 'notifications');
    await db.migrate.up({ migrationSource: migrationSourceFor('notifications'), tableName: 'knex_migrations', name: '001_initial' });
    const [ada, bob] = [newId(), newId()];
    const ids = Array.from({ length: 5 }, () => newId());
    // Inserted out of id order: positions follow the ids, as the stream used to read them.
    const rows = [
      [ada, ids[3]],
      [bob, ids[1]],
      [ada, ids[0]],
      [ada, ids[4]],
      [bob, ids[2]],
    ] as [string, string][];
    for (const [user, id] of rows) {
      await db('notifications').insert({
        id,
        user_id: user,
        kind: 'new_follower',
        text: id,
        data: '{}',
        message_id: newId(),
        created_at: new Date().toISOString(),
      });
    }
    expect(await migrateService(db, 'notifications', config)).to.deep.equal(['002_stream_order']);

    const positions = (await db('notifications').select('user_id', 'id', 'seq').orderBy(['user_id', 'seq'])) as { user_id: string; id: string; seq: number }[];
    expect(positions.filter((r) => r.user_id === ada).map((r) => [r.id, Number(r.seq)])).to.deep.equal([
      [ids[0], 1],
      [ids[3], 2],
      [ids[4], 3],
    ]);
    expect(positions.filter((r) => r.user_id === bob).map((r) => [r.id, Number(r.seq)])).to.deep.equal([
      [ids[1], 1],
      [ids[2], 2],
    ]);
    const counters = (await db(STREAM_COUNTERS_TABLE).select('user_id', 'last_seq')) as { user_id: string; last_seq: number }[];
    expect(Object.fromEntries(counters.map((c) => [c.user_id, Number(c.last_seq)]))).to.deep.equal({ [ada]: 3, [bob]: 2 });
    expect(await db.transaction((tx) => nextStreamPosition(tx, ada))).to.equal(4);
    expect(await db.transaction((tx) => nextStreamPosition(tx, newId()))).to.equal(1);
  });
});
