/**
 * The SQL of `user_metadata` (device id → user name, email, hourly quota), in
 * the folder that owns the table: the batch layer's join, the quota alerts'
 * user cache, the simulator's seeding and `provision --users` call these
 * functions instead of writing their own statements. Each takes the
 * `Queryable` it runs on, so a caller's transaction stays its own.
 */
import type { Queryable } from "./db.ts";

/** One row of `user_metadata`. */
export interface UserRow {
  readonly id: string;
  readonly name: string;
  readonly email: string;
  readonly quota: number;
}

/** Columns of users to write, one array each (bound as `unnest` arrays: both backends take them). */
export interface UserColumns {
  readonly ids: readonly string[];
  readonly names: readonly string[];
  readonly emails: readonly string[];
  readonly quotas: readonly number[];
}

/**
 * Inserts the users that are missing and leaves every existing row as it is
 * (an email or quota edited since must survive); returns how many were inserted.
 */
export async function insertMissingUsers(db: Queryable, u: UserColumns): Promise<number> {
  const inserted = await db.query<{ id: string }>(
    `INSERT INTO user_metadata (id, name, email, quota)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
     ON CONFLICT (id) DO NOTHING
     RETURNING id`,
    [u.ids, u.names, u.emails, u.quotas],
  );
  return inserted.length;
}

/** Inserts or overwrites the users; counts which rows were new and which replaced one. */
export async function upsertUsers(
  db: Queryable,
  u: UserColumns,
): Promise<{ inserted: number; updated: number }> {
  // xmax = 0 only on a freshly inserted row version: tells inserts from updates.
  const res = await db.query<{ inserted: boolean }>(
    `INSERT INTO user_metadata (id, name, email, quota)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
         ON CONFLICT (id) DO UPDATE
           SET name = excluded.name, email = excluded.email, quota = excluded.quota
         RETURNING (xmax = 0) AS inserted`,
    [u.ids, u.names, u.emails, u.quotas],
  );
  let inserted = 0, updated = 0;
  for (const r of res) r.inserted ? inserted++ : updated++;
  return { inserted, updated };
}

/** Every user (the batch layer's join: 100,000 devices is a few MB). */
export async function readUsers(db: Queryable): Promise<UserRow[]> {
  const rows = await db.query<{ id: string; name: string; email: string; quota: number }>(
    "SELECT id, name, email, quota FROM user_metadata",
  );
  return rows.map((r) => ({ id: r.id, name: r.name, email: r.email, quota: Number(r.quota) }));
}

/** Every user's device id, email and quota (the quota alerts' cache, which needs no name). */
export async function readUserQuotas(
  db: Queryable,
): Promise<{ id: string; email: string; quota: number }[]> {
  const rows = await db.query<{ id: string; email: string; quota: number }>(
    "SELECT id, email, quota FROM user_metadata",
  );
  return rows.map((r) => ({ id: r.id, email: r.email, quota: Number(r.quota) }));
}

/**
 * A fingerprint of the whole table (row count and a hash of every row,
 * computed by the database): equal fingerprints mean a cache need not reload.
 */
export async function usersFingerprint(db: Queryable): Promise<string> {
  const [{ fp }] = await db.query<{ fp: string }>(
    `SELECT count(*)::text || ':' || COALESCE(sum(hashtext(id || '|' || email || '|' ||
         quota::text)::bigint), 0)::text AS fp
       FROM user_metadata`,
  );
  return fp;
}

/** How many users the table holds. */
export async function countUsers(db: Queryable): Promise<number> {
  const [{ users }] = await db.query<{ users: number }>(
    "SELECT count(*) AS users FROM user_metadata",
  );
  return Number(users);
}

/**
 * The key of a device's user for a query joining devices by `device` (e.g.
 * `"p.id"`): the user's `column` (alias `u`), or with `unknownId` (a
 * placeholder) that key for devices without a user, which the inner join
 * would leave out. The join goes after the device table's FROM.
 *
 * @example
 * userKeySql("p.id", "email") // { key: "u.email", join: "JOIN user_metadata u ON u.id = p.id" }
 */
export function userKeySql(
  device: string,
  column: "email" | "name",
  unknownId?: string,
): { key: string; join: string } {
  return {
    key: unknownId ? `COALESCE(u.${column}, ${unknownId}::text)` : `u.${column}`,
    join: `${unknownId ? "LEFT " : ""}JOIN user_metadata u ON u.id = ${device}`,
  };
}
