import type { Knex } from 'knex';
import { createInboxTable, INBOX_TABLE } from '../inbox';

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
};
