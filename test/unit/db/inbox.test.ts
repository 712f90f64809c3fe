import { expect } from 'chai';
import { newId } from '../../../src/domain/ids';
import { claimInboxRecords, createInboxTable, INBOX_TABLE } from '../../../src/db/inbox';
import { testBackends, type TestDatabase } from '../../support/databases';

const backends = testBackends('analytics', { create: createInboxTable });

describe('claimInboxRecords', () => {
  for (const backend of backends) {
    describe(`on ${backend.name}`, () => {
      let testDb: TestDatabase;
      before(async () => {
        testDb = await backend.open();
      });
      after(async () => {
        await testDb?.close();
      });

      it('returns the ids new to this consumer, each once, and records them', async () => {
        const { db } = testDb;
        const [a, b, c] = [newId(), newId(), newId()];
        await db.transaction((tx) => claimInboxRecords(tx, 'analytics', [a!]));
        const claimed = await db.transaction((tx) => claimInboxRecords(tx, 'analytics', [a!, b!, c!, b!]));
        expect([...claimed].sort()).to.deep.equal([b!, c!].sort());
        // Another consumer's records are its own.
        expect([...(await db.transaction((tx) => claimInboxRecords(tx, 'notifications', [a!])))]).to.deep.equal([a]);
        const rows = await db(INBOX_TABLE).where({ consumer: 'analytics' }).whereIn('message_id', [a!, b!, c!]).count({ n: '*' });
        expect(Number(rows[0]!.n)).to.equal(3);
      });

      it('records nothing when its transaction rolls back', async () => {
        const { db } = testDb;
        const id = newId();
        await db
          .transaction(async (tx) => {
            await claimInboxRecords(tx, 'analytics', [id]);
            throw new Error('abort');
          })
          .catch(() => undefined);
        expect([...(await db.transaction((tx) => claimInboxRecords(tx, 'analytics', [id])))]).to.deep.equal([id]);
      });

      it('claims more ids than one statement holds', async () => {
        const { db } = testDb;
        const ids = Array.from({ length: 1201 }, () => newId());
        await db.transaction((tx) => claimInboxRecords(tx, 'analytics', ids.slice(0, 600)));
        const claimed = await db.transaction((tx) => claimInboxRecords(tx, 'analytics', ids));
        expect(claimed.size).to.equal(601);
        expect(claimed.has(ids[600]!)).to.equal(true);
        expect(claimed.has(ids[599]!)).to.equal(false);
      });
    });
  }
});
