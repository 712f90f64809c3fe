import type { Knex } from 'knex';

export interface UserRow {
  id: string;
  handle: string;
  handle_key: string;
  display_name: string;
  bio: string | null;
  created_at: string;
  updated_at: string;
}

/** A user as the API shows it. */
export interface User {
  id: string;
  handle: string;
  displayName: string;
  bio: string | null;
  createdAt: string;
  updatedAt: string;
}

export function toUser(row: UserRow): User {
  return {
    id: row.id,
    handle: row.handle,
    displayName: row.display_name,
    bio: row.bio ?? null,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export async function findUserById(db: Knex | Knex.Transaction, id: string): Promise<UserRow | undefined> {
  return db<UserRow>('users').where({ id }).first();
}

export async function findUserByHandleKey(db: Knex | Knex.Transaction, handleKey: string): Promise<UserRow | undefined> {
  return db<UserRow>('users').where({ handle_key: handleKey }).first();
}

export async function userExists(db: Knex | Knex.Transaction, id: string): Promise<boolean> {
  return (await db('users').select('id').where({ id }).first()) !== undefined;
}

export async function insertUser(tx: Knex.Transaction, row: UserRow): Promise<void> {
  await tx('users').insert(row);
}

export async function updateUser(
  tx: Knex.Transaction,
  id: string,
  patch: Partial<Pick<UserRow, 'handle' | 'handle_key' | 'display_name' | 'bio' | 'updated_at'>>,
): Promise<void> {
  await tx('users').where({ id }).update(patch);
}
