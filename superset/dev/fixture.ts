/**
 * Test-only stand-in for the serving database: creates the tables and views of
 * the data contract (bytes, bytes_hourly, user_metadata, user_quota_limit,
 * serving_hourly, serving_5m, serving_5m_live, batch_reconciliation) in an empty database and
 * fills them with a small, deterministic day of plausible telemetry at fixed
 * UTC times. The dashboard test calls `populate(url)`; once the provisioner and
 * the pipeline exist, the lead swaps it for a simulator run + batch run that
 * writes the same names, and the Superset side does not change.
 */
import postgres from "postgres";

/** What `populate` wrote, for assertions. */
export interface FixtureSummary {
  readonly antennas: number;
  readonly apps: number;
  readonly users: number;
  /** Hours with batch results; later hours exist only in the speed layer. */
  readonly batchedHours: number;
  readonly speedHours: number;
  /** Start of the first hour (UTC). */
  readonly from: Date;
}

const FROM = new Date("2026-11-27T00:00:00Z");
const BATCHED_HOURS = 4;
const SPEED_HOURS = 6;
const ANTENNAS = 5;
const USERS = 20;
const APPS = ["SKYPE", "FACEBOOK", "WHATSAPP", "FACETIME", "TELEGRAM", "INSTAGRAM"];

// The stand-ins keep the contract's names and columns exactly; the real
// provisioner may add keys, indexes and partial rows behind the same shapes.
const SCHEMA = `
CREATE TABLE bytes (timestamp TIMESTAMP, id TEXT, value BIGINT, type TEXT);
CREATE TABLE bytes_hourly (timestamp TIMESTAMP, id TEXT, value BIGINT, type TEXT);
CREATE TABLE user_metadata (id TEXT, name TEXT, email TEXT, quota BIGINT);
CREATE TABLE user_quota_limit (email TEXT, usage BIGINT, quota BIGINT, timestamp TIMESTAMP);
CREATE VIEW serving_5m AS
  SELECT timestamp, id, value, type, 'speed'::TEXT AS source FROM bytes;
CREATE VIEW serving_5m_live AS
  SELECT timestamp, id, value, type, 'speed'::TEXT AS source, true AS final FROM bytes;
CREATE VIEW serving_hourly AS
  SELECT timestamp, id, value, type, 'batch'::TEXT AS source FROM bytes_hourly
  UNION ALL
  SELECT date_trunc('hour', b.timestamp), b.id, SUM(b.value)::BIGINT, b.type, 'speed'
    FROM bytes b
   WHERE NOT EXISTS (
     SELECT 1 FROM bytes_hourly h WHERE h.timestamp = date_trunc('hour', b.timestamp))
   GROUP BY 1, 2, 4;
CREATE VIEW batch_reconciliation AS
  WITH pairs(metric, speed_metric) AS (VALUES
    ('antenna_bytes_total', 'antenna_bytes_total'),
    ('email_bytes_total', 'user_bytes_total'),
    ('app_bytes_total', 'app_bytes_total')),
  batch AS (
    SELECT timestamp AS hour, type AS metric, SUM(value)::BIGINT AS v
      FROM bytes_hourly GROUP BY 1, 2),
  speed AS (
    SELECT date_trunc('hour', timestamp) AS hour, type AS metric, SUM(value)::BIGINT AS v
      FROM bytes GROUP BY 1, 2)
  SELECT b.hour, p.metric, p.speed_metric, b.v AS batch_value,
         COALESCE(s.v, 0)::BIGINT AS speed_value, (b.v - COALESCE(s.v, 0))::BIGINT AS difference
    FROM batch b
    JOIN pairs p ON p.metric = b.metric
    LEFT JOIN speed s ON s.hour = b.hour AND s.metric = p.speed_metric;
`;

/** A small deterministic PRNG (mulberry32): same rows on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uuid(kind: number, n: number): string {
  return `00000000-0000-0000-000${kind}-${String(n).padStart(12, "0")}`;
}

interface Row {
  timestamp: Date;
  id: string;
  value: number;
  type: string;
}

/**
 * Creates the contract's tables and views in the (empty) database at `url` and
 * fills them. Example: `await populate("postgres://postgres@127.0.0.1:15432/t_x")`.
 */
export async function populate(url: string): Promise<FixtureSummary> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(SCHEMA);
    const rand = prng(42);
    const users = Array.from({ length: USERS }, (_, i) => ({
      id: uuid(1, i + 1),
      name: `User ${i + 1}`,
      email: `user${i + 1}@example.com`,
      // A few low quotas so that some users exceed them (bytes per hour).
      quota: i % 6 === 0 ? 200_000 : 5_000_000,
    }));
    await sql`INSERT INTO user_metadata ${sql(users, "id", "name", "email", "quota")}`;

    // Simulated events aggregated straight into 5-minute speed windows.
    const speed: Row[] = [];
    const hourly = new Map<string, Row>();
    const add = (m: Map<string, Row>, r: Row) => {
      const k = `${r.timestamp.toISOString()}|${r.type}|${r.id}`;
      const cur = m.get(k);
      if (cur) cur.value += r.value;
      else m.set(k, { ...r });
    };
    const windows = new Map<string, Row>();
    const totalHours = BATCHED_HOURS + SPEED_HOURS;
    for (let w = 0; w < totalHours * 12; w++) {
      const ts = new Date(FROM.getTime() + w * 5 * 60_000);
      const hour = new Date(FROM.getTime() + Math.floor(w / 12) * 3_600_000);
      for (let e = 0; e < 40; e++) {
        const u = users[Math.floor(rand() * USERS)];
        const antenna = uuid(0, Math.floor(rand() * ANTENNAS));
        const app = APPS[Math.floor(rand() * APPS.length)];
        const bytes = 1_000 + Math.floor(rand() * 60_000);
        add(windows, { timestamp: ts, id: antenna, value: bytes, type: "antenna_bytes_total" });
        add(windows, { timestamp: ts, id: u.id, value: bytes, type: "user_bytes_total" });
        add(windows, { timestamp: ts, id: app, value: bytes, type: "app_bytes_total" });
        if (w < BATCHED_HOURS * 12) {
          // The batch layer also sees late events the speed layer dropped:
          // a few bytes more makes the reconciliation non-trivial.
          const late = e === 0 ? 500 : 0;
          const v = bytes + late;
          add(hourly, { timestamp: hour, id: antenna, value: v, type: "antenna_bytes_total" });
          add(hourly, { timestamp: hour, id: u.email, value: v, type: "email_bytes_total" });
          add(hourly, { timestamp: hour, id: app, value: v, type: "app_bytes_total" });
        }
      }
    }
    speed.push(...windows.values());
    const hourRows = [...hourly.values()];
    await sql`INSERT INTO bytes ${sql(speed, "timestamp", "id", "value", "type")}`;
    await sql`INSERT INTO bytes_hourly ${sql(hourRows, "timestamp", "id", "value", "type")}`;

    const quota = new Map(users.map((u) => [u.email, u.quota]));
    const over = hourRows
      .filter((r) => r.type === "email_bytes_total" && r.value > (quota.get(r.id) ?? Infinity))
      .map((r) => ({
        email: r.id,
        usage: r.value,
        quota: quota.get(r.id)!,
        timestamp: r.timestamp,
      }));
    if (over.length > 0) {
      await sql`INSERT INTO user_quota_limit ${sql(over, "email", "usage", "quota", "timestamp")}`;
    }
    return {
      antennas: ANTENNAS,
      apps: APPS.length,
      users: USERS,
      batchedHours: BATCHED_HOURS,
      speedHours: SPEED_HOURS,
      from: FROM,
    };
  } finally {
    await sql.end();
  }
}
