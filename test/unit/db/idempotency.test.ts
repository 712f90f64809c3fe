import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Knex } from 'knex';
import { openDatabase } from '../../../src/db/knex';
import { migrateService, migrationSourceFor, loadConfig } from '../../../src/services';
import { findIdempotencyRecord, idempotencyRow } from '../../../src/db/repositories/idempotency';
import { newId } from '../../../src/domain/ids';

describe('idempotency records at rest', () => {
  let dir: string;
  let db: Knex;
  const token = 'wrn_' + Buffer.alloc(32, 9).toString('base64url');
  const response = JSON.stringify({ user: { id: 'u' }, token });
  const record = { caller: 'address 10.0.0.1', key: 'signup-7', requestHash: 'h'.repeat(64), status: 201, response, createdAt: 1_000 };

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-idempotency-'));
    db = openDatabase(loadConfig({ WARREN_DATABASE_DIR: dir }), 'api');
  });
  afterEach(async () => {
    await db.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps neither the key nor the response in clear, and opens them again with the key and caller', async () => {
    await migrateService(db, 'api', loadConfig({ WARREN_DATABASE_DIR: dir }));
    const row = idempotencyRow(record);
    expect(JSON.stringify(row)).to.not.include(token).and.not.include('signup-7');
    await db('idempotency_keys').insert(row);
    expect(await findIdempotencyRecord(db, record.caller, record.key, 0)).to.deep.equal(record);
    expect(await findIdempotencyRecord(db, 'address 10.0.0.2', record.key, 0), 'another caller').to.equal(undefined);
    expect(await findIdempotencyRecord(db, record.caller, 'signup-8', 0), 'another key').to.equal(undefined);
  });

  it('migration 002 seals the records written in clear before it, which still replay, and gives old tokens an id', async () => {
    const migrationSource = migrationSourceFor('api');
    await db.migrate.up({ migrationSource, name: '001_initial' });
    const at = new Date().toISOString();
    const userId = newId();
    await db('users').insert({ id: userId, handle: 'Ada', handle_key: 'ada', display_name: 'Ada', bio: null, created_at: at, updated_at: at });
    await db('tokens').insert({ token_hash: 'f'.repeat(64), user_id: userId, created_at: 1, expires_at: 2 });
    await db('idempotency_keys').insert({ caller: record.caller, key: record.key, request_hash: record.requestHash, status: 201, response, created_at: 1_000 });

    await db.migrate.latest({ migrationSource });
    const rows = await db('idempotency_keys').select();
    expect(rows).to.have.length(1);
    expect(JSON.stringify(rows)).to.not.include(token).and.not.include('signup-7');
    expect(await findIdempotencyRecord(db, record.caller, record.key, 0)).to.deep.equal(record);
    const [old] = await db('tokens').select('id');
    expect(old.id).to.match(/^[0-9a-f-]{36}$/);
  });
});
