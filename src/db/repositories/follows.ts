import type { Knex } from 'knex';

/** Returns true only when the follow is new, so `user.followed` is emitted once per follow. */
export async function insertFollow(tx: Knex.Transaction, followerId: string, followeeId: string, createdAt: string): Promise<boolean> {
  const inserted = await tx('follows')
    .insert({ follower_id: followerId, followee_id: followeeId, created_at: createdAt })
    .onConflict(['follower_id', 'followee_id'])
    .ignore()
    .returning('follower_id');
  return inserted.length > 0;
}

/** Returns true only when a follow was there to delete, so `user.unfollowed` is emitted once per unfollow. */
export async function deleteFollow(db: Knex, followerId: string, followeeId: string): Promise<boolean> {
  const deleted = await db('follows').where({ follower_id: followerId, followee_id: followeeId }).delete();
  return deleted > 0;
}
