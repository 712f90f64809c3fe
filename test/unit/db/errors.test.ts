import { expect } from 'chai';
import { isDatabaseUnavailable, isUnavailableForAll } from '../../../src/db/repositories/errors';
import { WriterThreadError } from '../../../src/db/sqliteThread';

const coded = (code: string, message = code) => Object.assign(new Error(message), { code });

describe('database failures: one statement or the whole connection', () => {
  it('reads a busy or locked SQLite file, a lost connection and a dead writer thread as unavailable for every statement', () => {
    for (const err of [
      coded('SQLITE_BUSY'),
      coded('SQLITE_BUSY_SNAPSHOT'),
      coded('SQLITE_IOERR_WRITE'),
      coded('SQLITE_FULL'),
      coded('ECONNRESET'),
      coded('57P01'),
      new WriterThreadError('the SQLite writer thread exited'),
    ]) {
      expect(isDatabaseUnavailable(err), String(err)).to.equal(true);
      expect(isUnavailableForAll(err), String(err)).to.equal(true);
    }
  });

  it("reads a PostgreSQL deadlock, serialization failure or lock refusal as that statement's, still answered 503", () => {
    for (const code of ['40P01', '40001', '55P03']) {
      expect(isDatabaseUnavailable(coded(code)), code).to.equal(true);
      expect(isUnavailableForAll(coded(code)), code).to.equal(false);
    }
  });

  it('reads a refused write or a wrong query as neither', () => {
    for (const err of [coded('SQLITE_CONSTRAINT_UNIQUE', 'UNIQUE constraint failed: notes.id'), coded('23505'), coded('42P01'), new Error('syntax')]) {
      expect(isDatabaseUnavailable(err), String(err)).to.equal(false);
      expect(isUnavailableForAll(err), String(err)).to.equal(false);
    }
  });
});
