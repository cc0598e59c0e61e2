/**
 * Test and benchmark support for the API: a plan with the default metrics
 * on a given lake, and speed-layer windows written the way the speed layer
 * stores them (partial rows per Kafka partition in speed_partials, a
 * watermark per partition in speed_progress that makes them visible in the
 * `bytes` view).
 */
import { planFromYaml } from "../../src/config/mod.ts";
import type { Plan } from "../../src/config/plan.ts";
import type { Queryable } from "../../src/db/db.ts";
import type { EventColumns } from "../../src/lake/mod.ts";

export interface ApiPlanOptions {
  /** `file:///…` lake. */
  lakeUri: string;
  /** api.token; undefined = loopback-only writes. */
  token?: string;
}

/** The default pipeline's speed and batch metrics, on the given lake. */
export function apiTestPlan(o: ApiPlanOptions): Plan {
  const yaml = `lake:
  uri: ${o.lakeUri}
speed:
  window: 5m
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id, aggregation: sum, field: bytes }
    - { name: user_bytes_total, group_by: id, aggregation: sum, field: bytes }
    - { name: app_bytes_total, group_by: app, aggregation: sum, field: bytes }
batch:
  unknown_device: { policy: unknown_id, id: unknown }
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id, reconcile_with: antenna_bytes_total }
    - { name: email_bytes_total, group_by: email, reconcile_with: user_bytes_total }
    - { name: app_bytes_total, group_by: app, reconcile_with: app_bytes_total }
api:
  host: 127.0.0.1
  port: 18080
${o.token ? `  token: ${o.token}\n` : ""}`;
  return planFromYaml(yaml, { env: {} });
}

export const WINDOW_MS = 5 * 60_000;

export interface SpeedRow {
  type: string;
  /** Window start, epoch ms. */
  timestamp: number;
  id: string;
  value: number;
  /** Kafka partition of the partial row. Default 0. */
  partition?: number;
}

/** The three default speed metrics over events, in 5-minute windows, one partial per partition. */
export function speedRowsOf(
  c: EventColumns,
  keep: (i: number) => boolean = () => true,
): SpeedRow[] {
  const acc = new Map<string, SpeedRow>();
  const add = (type: string, ts: number, id: string, p: number, v: number) => {
    const k = `${type}\u0000${ts}\u0000${id}\u0000${p}`;
    const r = acc.get(k);
    if (r) r.value += v;
    else acc.set(k, { type, timestamp: ts, id, value: v, partition: p });
  };
  for (let i = 0; i < c.id.length; i++) {
    if (!keep(i)) continue;
    const ts = Math.floor(c.timestamp[i] / WINDOW_MS) * WINDOW_MS;
    const p = c.partition[i];
    add("antenna_bytes_total", ts, c.antenna_id[i], p, c.bytes[i]);
    add("user_bytes_total", ts, c.id[i], p, c.bytes[i]);
    add("app_bytes_total", ts, c.app[i], p, c.bytes[i]);
  }
  return [...acc.values()];
}

/**
 * Writes speed windows as partial rows and moves each partition's watermark
 * past them, so the `bytes` view shows them. Metrics are registered as sums.
 */
export async function insertSpeedRows(db: Queryable, rows: readonly SpeedRow[]): Promise<void> {
  const types = [...new Set(rows.map((r) => r.type))];
  await db.query(
    `INSERT INTO speed_metrics (type, aggregation, window_ms)
     SELECT t, 'sum', $2 FROM unnest($1::text[]) AS t ON CONFLICT (type) DO NOTHING`,
    [types, WINDOW_MS],
  );
  for (let i = 0; i < rows.length; i += 20_000) {
    const chunk = rows.slice(i, i + 20_000);
    await db.query(
      `INSERT INTO speed_partials (type, "timestamp", id, "partition", value, window_end)
       SELECT t, to_timestamp(ts / 1000.0) AT TIME ZONE 'UTC', id, p, v,
         to_timestamp((ts + $6) / 1000.0) AT TIME ZONE 'UTC'
       FROM unnest($1::text[], $2::float8[], $3::text[], $4::int[], $5::bigint[]) AS u(t, ts, id, p, v)
       ON CONFLICT (type, id, "timestamp", "partition") DO UPDATE SET value = EXCLUDED.value`,
      [
        chunk.map((r) => r.type),
        chunk.map((r) => r.timestamp),
        chunk.map((r) => r.id),
        chunk.map((r) => r.partition ?? 0),
        chunk.map((r) => r.value),
        WINDOW_MS,
      ],
    );
  }
  const maxEnd = new Map<number, number>();
  for (const r of rows) {
    const p = r.partition ?? 0;
    maxEnd.set(p, Math.max(maxEnd.get(p) ?? 0, r.timestamp + WINDOW_MS));
  }
  await advanceWatermarks(db, maxEnd);
}

/** Sets (only ever raises) each partition's watermark. */
export async function advanceWatermarks(
  db: Queryable,
  watermarks: ReadonlyMap<number, number>,
  topic = "devices",
): Promise<void> {
  for (const [p, wm] of watermarks) {
    await db.query(
      `INSERT INTO speed_progress (topic, "partition", next_offset, lake_offset, clock_ms, watermark)
       VALUES ($1, $2, 0, 0, $3::bigint, to_timestamp($3::bigint / 1000.0) AT TIME ZONE 'UTC')
       ON CONFLICT (topic, "partition") DO UPDATE
         SET watermark = GREATEST(speed_progress.watermark, EXCLUDED.watermark)`,
      [topic, p, wm],
    );
  }
}
