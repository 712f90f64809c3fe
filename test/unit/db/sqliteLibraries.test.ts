import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { openDatabase, sqliteFile, sqliteLibraryOf } from '../../../src/db/knex';
import { PreparedTokenLookups } from '../../../src/db/repositories/tokens';
import { ThreadConnection } from '../../../src/db/sqliteThread';
import { loadConfig, migrateService } from '../../../src/services';

/** The library a pool links, and whether its connection is the writer's thread. */
async function runnerOf(db: Knex): Promise<string> {
  const driver = (db.client as { driverName: string }).driverName;
  const conn: unknown = await db.client.acquireConnection();
  try {
    return conn instanceof ThreadConnection ? 'thread' : driver;
  } finally {
    await db.client.releaseConnection(conn);
  }
}

describe('one SQLite library per file in a process (sqliteDriver auto)', () => {
  let dir: string;
  const opened: Knex[] = [];
  const open = (...args: Parameters<typeof openDatabase>) => {
    const db = openDatabase(...args);
    opened.push(db);
    return db;
  };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-libs-'));
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((db) => db.destroy()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("opens the API's readers with its writer's library, and another service's store with node-sqlite3", async () => {
    const config = loadConfig({ WARREN_DATABASE_DIR: dir });
    const writer = open(config, 'api', { writer: true });
    const readers = open(config, 'api', { attachReadModels: true, readers: 2 });
    const timeline = open(config, 'timeline');
    expect(await runnerOf(writer)).to.equal('thread');
    expect(await runnerOf(readers)).to.equal('better-sqlite3');
    expect(await runnerOf(timeline)).to.equal('sqlite3');
    expect(sqliteLibraryOf(sqliteFile(config, 'api'))).to.equal('better-sqlite3');
    expect(sqliteLibraryOf(sqliteFile(config, 'timeline'))).to.equal('sqlite3');
  });

  it('keeps a writer opened after node-sqlite3 readers of its file on node-sqlite3', async () => {
    const config = loadConfig({ WARREN_DATABASE_DIR: dir });
    const readers = open(config, 'api', { readers: 2 });
    const writer = open(config, 'api', { writer: true });
    expect(await runnerOf(readers)).to.equal('sqlite3');
    expect(await runnerOf(writer)).to.equal('sqlite3');
  });

  it('counts a file attached by one pool as opened by its library', async () => {
    const config = loadConfig({ WARREN_DATABASE_DIR: dir });
    open(config, 'api', { writer: true });
    open(config, 'api', { attachReadModels: true, readers: 1 }); // attaches analytics.sqlite on better-sqlite3
    expect(await runnerOf(open(config, 'analytics'))).to.equal('better-sqlite3');
  });

  it('lets a file go once every pool that had it open is destroyed', async () => {
    const config = loadConfig({ WARREN_DATABASE_DIR: dir });
    const file = sqliteFile(config, 'api');
    const first = openDatabase(config, 'api', { readers: 1 });
    const second = openDatabase(config, 'api', { readers: 1 });
    await first.destroy();
    expect(sqliteLibraryOf(file), 'one pool still has it').to.equal('sqlite3');
    await second.destroy();
    await second.destroy(); // twice: counted once
    expect(sqliteLibraryOf(file)).to.equal(undefined);
    // Migrated with node-sqlite3 and closed, then opened by the writer: on its thread.
    expect(await runnerOf(open(config, 'api', { writer: true }))).to.equal('thread');
  });

  it('takes a setting other than auto as given', async () => {
    const config = loadConfig({ WARREN_DATABASE_DIR: dir, WARREN_DATABASE_SQLITE_DRIVER: 'sqlite3' });
    expect(await runnerOf(open(config, 'api', { writer: true }))).to.equal('sqlite3');
    expect(await runnerOf(open(config, 'api', { readers: 1 }))).to.equal('sqlite3');
  });

  it("counts the prepared token lookup's connection as better-sqlite3's while it is open", async () => {
    const config = loadConfig({ WARREN_DATABASE_DIR: dir });
    const file = sqliteFile(config, 'api');
    const setup = openDatabase(config, 'api');
    await migrateService(setup, 'api', config);
    await setup.destroy();
    const lookups = new PreparedTokenLookups(file);
    try {
      expect(await lookups.find('no-such-token')).to.equal(undefined);
      expect(sqliteLibraryOf(file)).to.equal('better-sqlite3');
      // A reader pool opened beside it follows its library, where auto alone would pick node-sqlite3.
      expect(await runnerOf(open(config, 'api', { readers: 1 }))).to.equal('better-sqlite3');
    } finally {
      lookups.close();
    }
    lookups.close(); // twice: released once
    await Promise.all(opened.splice(0).map((db) => db.destroy()));
    expect(sqliteLibraryOf(file), 'released when closed').to.equal(undefined);
  });
});
