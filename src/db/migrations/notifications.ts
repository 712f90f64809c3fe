import type { Knex } from 'knex';
import { createInboxTable, INBOX_TABLE } from '../inbox';

/** Each user's last stream position handed out. */
export const STREAM_COUNTERS_TABLE = 'notification_stream_counters';

/** The notifications worker's read model, served by /users/:id/notifications. */
export const notificationsMigrations: Record<string, Knex.Migration> = {
  '001_initial': {
    async up(knex) {
      await createInboxTable(knex);
      await knex.schema.createTable('notifications', (t) => {
        t.string('id', 36).primary();
        t.string('user_id', 36).notNullable();
        t.string('kind', 50).notNullable();
        t.text('text').notNullable();
        t.text('data').notNullable();
        t.string('message_id', 100).notNullable();
        t.string('created_at', 30).notNullable();
        t.index(['user_id', 'id']);
      });
    },
    async down(knex) {
      await knex.schema.dropTableIfExists('notifications');
      await knex.schema.dropTableIfExists(INBOX_TABLE);
    },
  },
  /**
   * A notification's place in its user's stream (`seq`, 1, 2, ...), given in
   * the transaction that stores it from the user's counter row, so that
   * position order is commit order (src/workers/notifications.ts). Rows
   * stored before take their positions in id order, as the stream read them.
   */
  '002_stream_order': {
    async up(knex) {
      await knex.schema.alterTable('notifications', (t) => {
        t.bigInteger('seq');
      });
      await knex.raw(
        'UPDATE notifications SET seq = (SELECT COUNT(*) FROM notifications earlier WHERE earlier.user_id = notifications.user_id AND earlier.id <= notifications.id)',
      );
      await knex.schema.alterTable('notifications', (t) => {
        t.unique(['user_id', 'seq']);
      });
      await knex.schema.createTable(STREAM_COUNTERS_TABLE, (t) => {
        t.string('user_id', 36).primary();
        t.bigInteger('last_seq').notNullable();
      });
      await knex.raw(`INSERT INTO ${STREAM_COUNTERS_TABLE} (user_id, last_seq) SELECT user_id, MAX(seq) FROM notifications GROUP BY user_id`);
    },
    async down(knex) {
      await knex.schema.dropTableIfExists(STREAM_COUNTERS_TABLE);
      await knex.schema.alterTable('notifications', (t) => {
        t.dropUnique(['user_id', 'seq']);
        t.dropColumn('seq');
      });
    },
  },
};
