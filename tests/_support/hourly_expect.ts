/**
 * What the batch tables must hold, computed here from the events a test
 * produced, with a few lines of plain arithmetic (never the product's
 * aggregation code): `bytes_hourly` rows of the default batch metrics and
 * `user_quota_limit` rows, plus readers of those tables in the same shape.
 */
import type { Queryable } from "../../src/db/db.ts";

export interface TestEvent {
  readonly bytes: number;
  readonly timestamp: number;
  readonly app: string;
  readonly id: string;
  readonly antenna_id: string;
}

export interface TestUser {
  readonly id: string;
  readonly name: string;
  readonly email: string;
  readonly quota: number;
}

const HOUR = 3_600_000;
const hourOf = (e: TestEvent) => Math.floor((e.timestamp * 1000) / HOUR) * HOUR;

/**
 * Users for `deviceIds`: two devices share each email (a user with several
 * devices is one email) and every third email has a quota low enough to be
 * exceeded; the quota of an email is the largest of its devices'.
 */
export function testUsers(deviceIds: readonly string[], lowQuota = 200_000): TestUser[] {
  return deviceIds.map((id, i) => {
    const user = Math.floor(i / 2);
    return {
      id,
      name: `User ${user}`,
      email: `user${user}@example.com`,
      quota: user % 3 === 0 ? lowQuota : 1e12,
    };
  });
}

export async function insertTestUsers(db: Queryable, users: readonly TestUser[]): Promise<void> {
  await db.query(
    `INSERT INTO user_metadata (id, name, email, quota)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])`,
    [
      users.map((u) => u.id),
      users.map((u) => u.name),
      users.map((u) => u.email),
      users.map((u) => u.quota),
    ],
  );
}

/** `type|hour ms|id` → value for antenna_bytes_total, email_bytes_total and app_bytes_total. */
export function expectedHourly(
  events: readonly TestEvent[],
  users: readonly TestUser[],
  hours?: ReadonlySet<number>,
): Map<string, number> {
  const email = new Map(users.map((u) => [u.id, u.email]));
  const out = new Map<string, number>();
  const add = (k: string, v: number) => out.set(k, (out.get(k) ?? 0) + v);
  for (const e of events) {
    const h = hourOf(e);
    if (hours && !hours.has(h)) continue;
    add(`antenna_bytes_total|${h}|${e.antenna_id}`, e.bytes);
    add(`email_bytes_total|${h}|${email.get(e.id) ?? "unknown"}`, e.bytes);
    add(`app_bytes_total|${h}|${e.app}`, e.bytes);
  }
  return out;
}

/** `hour ms|email` → `usage/quota` for users strictly over their hourly quota. */
export function expectedBreaches(
  events: readonly TestEvent[],
  users: readonly TestUser[],
  hours?: ReadonlySet<number>,
): Map<string, string> {
  const email = new Map(users.map((u) => [u.id, u.email]));
  const quota = new Map<string, number>();
  for (const u of users) quota.set(u.email, Math.max(quota.get(u.email) ?? 0, u.quota));
  const usage = new Map<string, number>();
  for (const e of events) {
    const h = hourOf(e);
    if (hours && !hours.has(h)) continue;
    const k = `${h}|${email.get(e.id)}`;
    usage.set(k, (usage.get(k) ?? 0) + e.bytes);
  }
  const out = new Map<string, string>();
  for (const [k, u] of usage) {
    const q = quota.get(k.split("|")[1])!;
    if (u > q) out.set(k, `${u}/${q}`);
  }
  return out;
}

/** Valid events per hour. */
export function eventsPerHour(events: readonly TestEvent[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const e of events) out.set(hourOf(e), (out.get(hourOf(e)) ?? 0) + 1);
  return out;
}

export async function readHourly(db: Queryable): Promise<Map<string, number>> {
  const rows = await db.query<{ timestamp: Date; id: string; value: number; type: string }>(
    "SELECT timestamp, id, value, type FROM bytes_hourly",
  );
  return new Map(rows.map((r) => [`${r.type}|${r.timestamp.getTime()}|${r.id}`, Number(r.value)]));
}

export async function readBreaches(db: Queryable): Promise<Map<string, string>> {
  const rows = await db.query<{ timestamp: Date; email: string; usage: number; quota: number }>(
    "SELECT timestamp, email, usage, quota FROM user_quota_limit",
  );
  return new Map(
    rows.map((
      r,
    ) => [`${r.timestamp.getTime()}|${r.email}`, `${Number(r.usage)}/${Number(r.quota)}`]),
  );
}

/** Sorted entries, for readable assertion diffs. */
export function entries<V>(m: Map<string, V>): [string, V][] {
  return [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

export interface RunRow {
  hour: number;
  trigger: string;
  status: string;
  rowsRead: number | null;
  lakeComplete: boolean | null;
  error: string | null;
}

export async function readRuns(db: Queryable): Promise<RunRow[]> {
  const rows = await db.query<{
    hour: Date;
    trigger: string;
    status: string;
    rows_read: number | null;
    lake_complete: boolean | null;
    error: string | null;
  }>(
    "SELECT hour, trigger, status, rows_read, lake_complete, error FROM batch_runs ORDER BY run_id",
  );
  return rows.map((r) => ({
    hour: r.hour.getTime(),
    trigger: r.trigger,
    status: r.status,
    rowsRead: r.rows_read === null ? null : Number(r.rows_read),
    lakeComplete: r.lake_complete,
    error: r.error,
  }));
}
