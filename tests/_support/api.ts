/**
 * Test and benchmark support for the API: a plan with the default metrics
 * on a given lake, and speed-layer windows written through the speed layer's
 * sink (partial rows per Kafka partition in speed_partials, a watermark per
 * partition in speed_progress that makes them visible in the `bytes` view and
 * final in `bytes_live`).
 */
import { type Plan, planFromYaml } from "../../src/config/mod.ts";
import { type WindowDelta, windowStart } from "../../src/core/mod.ts";
import type { Db } from "../../src/db/mod.ts";
import type { EventColumns } from "../../src/lake/mod.ts";
import {
  type PartitionFlush,
  readProgress,
  upsertMetrics,
  writeFlush,
} from "../../src/speed/sink.ts";

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

/** The plan's `speed.window`. */
const WINDOW_MS = 5 * 60_000;

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
    const ts = windowStart(c.timestamp[i], WINDOW_MS);
    const p = c.partition[i];
    add("antenna_bytes_total", ts, c.antenna_id[i], p, c.bytes[i]);
    add("user_bytes_total", ts, c.id[i], p, c.bytes[i]);
    add("app_bytes_total", ts, c.app[i], p, c.bytes[i]);
  }
  return [...acc.values()];
}

/**
 * Writes speed windows the way the speed layer does, through its sink: the
 * plan's speed metrics declared, the rows as one flush (per partition, merged
 * into what is stored by each metric's combine rule), and each partition's
 * watermark moved past its rows (only ever raised) so the `bytes` view shows
 * them. Every row's type must be a speed metric of the plan.
 */
export async function insertSpeedRows(
  db: Db,
  plan: Plan,
  rows: readonly SpeedRow[],
): Promise<void> {
  const { speed } = plan;
  const topic = plan.source.kafka.topic;
  const aggregations = new Map(speed.metrics.map((m) => [m.name, m.aggregation]));
  const deltas = new Map<number, WindowDelta[]>();
  const ends = new Map<number, number>();
  for (const r of rows) {
    if (!aggregations.has(r.type)) {
      throw new RangeError(`Speed row type "${r.type}" is not a speed metric of the plan`);
    }
    const p = r.partition ?? 0;
    let list = deltas.get(p);
    if (!list) deltas.set(p, list = []);
    list.push({ metric: r.type, windowStart: r.timestamp, key: r.id, value: r.value });
    ends.set(p, Math.max(ends.get(p) ?? -Infinity, r.timestamp + speed.windowMs));
  }
  await upsertMetrics(db, speed);
  const stored = await readProgress(db, topic, [...deltas.keys()]);
  const parts: PartitionFlush[] = [...deltas].map(([partition, list]) => {
    const prior = stored.get(partition);
    // Past the rows' windows by the allowed lateness, so they take no more late
    // events (final in bytes_live); the clock stands at the watermark (no
    // lateness), so it carries the watermark over.
    const watermarkMs = Math.max(
      prior?.clockMs ?? -Infinity,
      ends.get(partition)! + speed.allowedLatenessMs,
    );
    return {
      partition,
      deltas: list,
      letters: [],
      nextOffset: prior?.nextOffset ?? 0,
      lakeOffset: prior?.lakeOffset ?? 0,
      clockMs: watermarkMs,
      watermarkMs,
    };
  });
  await writeFlush(db, topic, speed.windowMs, aggregations, parts);
}
