/**
 * The user metadata join: device id → email, name, hourly quota, loaded from
 * `user_metadata` once per run (100,000 devices is a few MB) rather than
 * queried per row.
 */
import { type Queryable, readUsers } from "../db/mod.ts";
import type { UserMeta } from "./compute.ts";

export async function loadUsers(db: Queryable): Promise<Map<string, UserMeta>> {
  const rows = await readUsers(db);
  const out = new Map<string, UserMeta>();
  for (const r of rows) {
    out.set(r.id, { email: r.email, name: r.name, quota: r.quota });
  }
  return out;
}
