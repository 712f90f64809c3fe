import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { openDatabase } from '../../../src/db/knex';
import { migrateService, loadConfig } from '../../../src/services';
import { insertToken, PreparedTokenLookups, revokeToken, tokenFinder, TokenLookups } from '../../../src/db/repositories/tokens';
import { newId } from '../../../src/domain/ids';

describe('token lookups', () => {
  let dir: string;
  let db: Knex;
  const userId = newId();

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-tokens-'));
    // better-sqlite3 for the file, as the API's own pools under sqliteDriver auto: the prepared lookup's library.
    const config = loadConfig({ WARREN_DATABASE_DIR: dir, WARREN_DATABASE_SQLITE_DRIVER: 'better-sqlite3' });
    db = openDatabase(config, 'api');
    await migrateService(db, 'api', config);
    const at = new Date().toISOString();
    await db('users').insert({ id: userId, handle: 'Ada', handle_key: 'ada', display_name: 'Ada', bio: null, created_at: at, updated_at: at });
    await db.transaction(async (tx) => {
      for (const hash of ['a', 'b', 'c']) await insertToken(tx, { id: `id-${hash}`, tokenHash: hash, userId, createdAt: 1, expiresAt: 2 });
    });
  });

  afterEach(async () => {
    await db.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers the lookups of one turn with one query, each with its own token and the user handle', async () => {
    const lookups = new TokenLookups(db);
    const queries: string[] = [];
    db.on('query', (q: { sql: string }) => queries.push(q.sql));
    const [a, b, again, unknown] = await Promise.all([lookups.find('a'), lookups.find('b'), lookups.find('a'), lookups.find('nope')]);
    expect(queries).to.have.length(1);
    expect(a).to.deep.equal({ id: 'id-a', tokenHash: 'a', userId, handle: 'Ada', createdAt: 1, expiresAt: 2, revokedAt: null, lastUsedDay: null });
    expect(b?.tokenHash).to.equal('b');
    expect(again).to.deep.equal(a);
    expect(unknown).to.equal(undefined);
  });

  it('caches nothing: a revocation shows in the next lookup', async () => {
    const lookups = new TokenLookups(db);
    expect((await lookups.find('c'))?.revokedAt).to.equal(null);
    await revokeToken(db, 'c', 5);
    expect((await lookups.find('c'))?.revokedAt).to.equal(5);
  });

  it('is the batched lookup on a file this process opens with node-sqlite3: one SQLite library per file', async () => {
    const other = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-tokens-'));
    const config = loadConfig({ WARREN_DATABASE_DIR: other, WARREN_DATABASE_SQLITE_DRIVER: 'sqlite3' });
    const onSqlite3 = openDatabase(config, 'api');
    try {
      await migrateService(onSqlite3, 'api', config);
      expect(tokenFinder(onSqlite3)).to.be.instanceOf(TokenLookups);
    } finally {
      await onSqlite3.destroy();
      fs.rmSync(other, { recursive: true, force: true });
    }
  });

  describe('prepared, on the SQLite file', () => {
    let prepared: PreparedTokenLookups;
    beforeEach(() => {
      prepared = tokenFinder(db) as PreparedTokenLookups;
    });
    afterEach(() => prepared.close());

    it('is the lookup a SQLite file gets, and answers as the batched one does', async () => {
      expect(prepared).to.be.instanceOf(PreparedTokenLookups);
      const batched = new TokenLookups(db);
      for (const hash of ['a', 'b', 'nope']) expect(await prepared.find(hash)).to.deep.equal(await batched.find(hash));
      expect(await prepared.find('a')).to.deep.equal({
        id: 'id-a',
        tokenHash: 'a',
        userId,
        handle: 'Ada',
        createdAt: 1,
        expiresAt: 2,
        revokedAt: null,
        lastUsedDay: null,
      });
    });

    it('answers within the same turn of the event loop, before anything scheduled after it', async () => {
      await prepared.find('a'); // the connection opens on first use
      const order: string[] = [];
      const turn = new Promise<void>((resolve) => setImmediate(() => (order.push('next turn'), resolve())));
      await prepared.find('b').then(() => order.push('lookup'));
      await turn;
      expect(order).to.deep.equal(['lookup', 'next turn']);
    });

    it('caches nothing: a revocation committed by the writer shows in the next lookup', async () => {
      expect((await prepared.find('c'))?.revokedAt).to.equal(null);
      await revokeToken(db, 'c', 5);
      expect((await prepared.find('c'))?.revokedAt).to.equal(5);
    });

    it('fails the lookup, not the process, when the database cannot be opened', async () => {
      const missing = new PreparedTokenLookups(path.join(dir, 'nowhere.sqlite'));
      const err = await missing.find('a').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect((err as { code?: string }).code).to.equal('SQLITE_CANTOPEN');
    });
  });
});
