/**
 * Seeds `user_metadata` for the simulator's devices so the batch layer can join
 * every simulated event to a user (here, in the simulator's own module, so the
 * database layer knows nothing of the simulator's ids). Device `i` (0-based, id `deviceId(i)`) is
 * user N = i + 1: name `User N`, email `userN@example.com`. The default
 * simulator (100 events/s over 20 devices, ~4.7 KB an event on average) gives a
 * device about 85 MB an hour (~23 KB/s), so every 5th user (N = 5, 10, 15, ...)
 * gets a 5 MB hourly quota, exceeded from 0.3 events/s per device, and
 * everyone else 1 GB, never exceeded. At the default rate a low-quota user
 * reaches 80 % of it about 3 minutes into each hour and 100 % about 3.5
 * minutes in, so a new install sees quota alerts within minutes and breaches
 * from the first batched hour.
 */
import type { Db } from "../db/db.ts";
import { deviceId } from "./ids.ts";

/** Hourly quota (bytes) of a user whose quota is meant to be exceeded. */
export const LOW_QUOTA = 5_000_000;
/** Hourly quota (bytes) of everyone else. */
export const HIGH_QUOTA = 1_000_000_000;

/** Hourly quota of simulated device `i` (0-based): every 5th user is low. */
export function seedQuota(i: number): number {
  return (i + 1) % 5 === 0 ? LOW_QUOTA : HIGH_QUOTA;
}

/**
 * Inserts the simulated devices' users that are missing. A row that exists is
 * left as it is: `start` seeds on every start with the simulator, and a quota
 * or email edited since (psql, `provision --users`) must survive restarts.
 * Returns the number of users inserted.
 *
 * @example
 * await seedUsers(db, { devices: plan.source.simulator.devices }); // 20, then 0
 */
export async function seedUsers(db: Db, opts: { devices: number }): Promise<number> {
  const n = opts.devices;
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`seedUsers() needs a non-negative integer device count, got ${n}`);
  }
  if (n === 0) return 0;
  const ids: string[] = [], names: string[] = [], emails: string[] = [], quotas: number[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(deviceId(i));
    names.push(`User ${i + 1}`);
    emails.push(`user${i + 1}@example.com`);
    quotas.push(seedQuota(i));
  }
  const inserted = await db.query<{ id: string }>(
    `INSERT INTO user_metadata (id, name, email, quota)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])
     ON CONFLICT (id) DO NOTHING
     RETURNING id`,
    [ids, names, emails, quotas],
  );
  return inserted.length;
}
