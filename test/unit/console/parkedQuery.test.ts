/** @file The filters and search of the console's index turned into SQL, without a database: what each filter adds, escaping, paging. */
import { expect } from 'chai';
import knexFactory from 'knex';
import {
  applyPage,
  applyParkedFilter,
  decodePageCursor,
  encodePageCursor,
  likeContaining,
  parkedFilter,
  parkedListQuery,
} from '../../../src/console/parkedQuery';
import { parseRequest } from '../../../src/api/validation';
import { ValidationError } from '../../../src/domain/errors';

// A query builder only: it is never connected.
const knex = knexFactory({ client: 'sqlite3', useNullAsDefault: true });
const sqlOf = (query: Record<string, unknown>) => applyParkedFilter(knex('parked_messages').select('id'), parkedFilter.parse(query)).toSQL();

describe('console: parked message search and filters', function () {
  after(() => knex.destroy());

  it('selects only parked messages unless told otherwise', function () {
    expect(sqlOf({}).sql).to.equal('select `id` from `parked_messages` where `status` = ?');
    expect(sqlOf({}).bindings).to.deep.equal(['parked']);
    expect(sqlOf({ status: 'replayed' }).bindings).to.deep.equal(['replayed']);
    expect(sqlOf({ status: 'any' }).sql).to.equal('select `id` from `parked_messages`');
  });

  it('searches the lower-cased body and headers for the phrase, with LIKE wildcards in it matching only themselves', function () {
    const { sql, bindings } = sqlOf({ q: 'Ada 100%_off\\' });
    expect(sql).to.equal("select `id` from `parked_messages` where `status` = ? and search_text LIKE ? ESCAPE '\\'");
    expect(bindings).to.deep.equal(['parked', '%ada 100\\%\\_off\\\\%']);
    expect(likeContaining('plain')).to.equal('%plain%');
  });

  it('adds queue, kind, reason, a time range and failed-again-after-replay, each as its own condition', function () {
    const { sql, bindings } = sqlOf({
      queue: 'analytics.tweets',
      kind: 'crash-loop',
      reason: 'Delivery_Limit',
      from: '2026-01-01T00:00:00Z',
      to: '2026-01-02',
      failedAgainAfterReplay: 'true',
    });
    expect(sql).to.equal(
      "select `id` from `parked_messages` where `status` = ? and `queue` = ? and `kind` = ? and LOWER(reason) LIKE ? ESCAPE '\\' and `parked_at` >= ? and `parked_at` < ? and `replay_count` > ?",
    );
    expect(bindings).to.deep.equal([
      'parked',
      'analytics.tweets',
      'crash-loop',
      '%delivery\\_limit%',
      Date.parse('2026-01-01T00:00:00Z'),
      Date.parse('2026-01-02'),
      0,
    ]);
    expect(sqlOf({ failedAgainAfterReplay: 'false' }).sql).to.match(/`replay_count` = \?$/);
  });

  it('refuses a filter it does not know, a kind that is not one, a time that is not ISO-8601 and an out-of-range limit, naming the field', function () {
    const refused = (q: Record<string, unknown>) => {
      try {
        parseRequest(parkedListQuery, q, 'query');
      } catch (err) {
        expect(err).to.be.instanceOf(ValidationError);
        return (err as ValidationError).details.map((d) => d.path);
      }
      throw new Error(`accepted ${JSON.stringify(q)}`);
    };
    expect(refused({ colour: 'red' })).to.deep.equal(['colour']);
    expect(refused({ kind: 'sad' })).to.deep.equal(['kind']);
    expect(refused({ from: 'yesterday' })).to.deep.equal(['from']);
    expect(refused({ from: '1700000000' })).to.deep.equal(['from']);
    expect(refused({ limit: '0' })).to.deep.equal(['limit']);
    expect(refused({ limit: '101' })).to.deep.equal(['limit']);
    expect(refused({ q: '' })).to.deep.equal(['q']);
    expect(parkedListQuery.parse({}).limit).to.equal(20);
  });

  it('pages newest park first and continues after the cursor, ties broken by id', function () {
    const cursor = encodePageCursor({ parkedAt: 1_767_225_600_000, id: '01a2-x' });
    expect(decodePageCursor(cursor)).to.deep.equal({ parkedAt: 1_767_225_600_000, id: '01a2-x' });
    const { sql, bindings } = applyPage(knex('parked_messages').select('id'), 21, decodePageCursor(cursor)).toSQL();
    expect(sql).to.equal(
      'select `id` from `parked_messages` where (`parked_at` < ? or (`parked_at` = ? and `id` < ?)) order by `parked_at` desc, `id` desc limit ?',
    );
    expect(bindings).to.deep.equal([1_767_225_600_000, 1_767_225_600_000, '01a2-x', 21]);
    for (const bad of ['', 'bm90IGpzb24', Buffer.from('[1,2]').toString('base64url'), Buffer.from('["a","b"]').toString('base64url')]) {
      expect(decodePageCursor(bad), bad).to.equal(undefined);
    }
  });
});
