/**
 * Test and benchmark support for the batch layer: a plan for a given lake and
 * database, deterministic event columns for one hour (the simulator's ids and
 * random generator), and a writer that puts them into the lake in the speed
 * layer's format (the lake's own encoder and segment names, several files per
 * Kafka partition, rows in offset order).
 */
import assert from "node:assert/strict";
import { type Plan, planFromYaml, type UnknownDevicePolicy } from "../../src/config/mod.ts";
import type { Queryable } from "../../src/db/mod.ts";
import {
  allocColumns,
  encodeColumns,
  type EventColumns,
  hourPath,
  type ObjectStore,
  pickRows,
  segmentFileName,
} from "../../src/lake/mod.ts";
import { antennaId, createRandom } from "../../src/simulator/mod.ts";

export interface TestPlanOptions {
  /** `file:///…` or `gs://bucket/prefix`. */
  lakeUri: string;
  gcsEndpoint?: string;
  policy?: UnknownDevicePolicy;
  graceMinutes?: number;
  catchUpHours?: number;
  /** Extra YAML lines appended under `batch.metrics` (already indented by 4). */
  extraMetricsYaml?: string;
  /** speed.enabled; false = the lake is written by someone else (wall-clock schedule). Default true. */
  speedEnabled?: boolean;
  /** batch.process_max_rows; default unset (from the machine's memory). */
  processMaxRows?: number;
}

const DEFAULT_METRICS =
  `    - { name: antenna_bytes_total, group_by: antenna_id, reconcile_with: antenna_bytes_total }
    - { name: email_bytes_total, group_by: email, reconcile_with: user_bytes_total }
    - { name: app_bytes_total, group_by: app, reconcile_with: app_bytes_total }
`;

/** A plan with the default metrics on the given lake. */
export function testPlan(o: TestPlanOptions): Plan {
  const yaml = `lake:
  uri: ${o.lakeUri}
${o.gcsEndpoint ? `  gcs_endpoint: ${o.gcsEndpoint}\n  gcs_project_id: test\n` : ""}${
    o.speedEnabled === false ? "speed:\n  enabled: false\n" : ""
  }batch:
  grace: ${o.graceMinutes ?? 10}m
  catch_up_hours: ${o.catchUpHours ?? 24}
${
    o.processMaxRows !== undefined
      ? `  process_max_rows: ${o.processMaxRows}\n`
      : ""
  }  unknown_device:
    policy: ${o.policy ?? "unknown_id"}
    id: unknown
  metrics:
${DEFAULT_METRICS}${o.extraMetricsYaml ?? ""}`;
  return planFromYaml(yaml, { env: {} });
}

export interface GenOptions {
  /** Hour start, epoch ms. */
  hour: number;
  events: number;
  /** Device ids to draw from (the simulator's `deviceId(i)`, or any others). */
  devices: readonly string[];
  /** Antennas `antennaId(0)` … `antennaId(antennas - 1)` of the simulator. */
  antennas: number;
  apps: readonly string[];
  /** Seed of the simulator's random generator. Default 1. */
  seed?: number;
  /** Kafka partitions, assigned round-robin. Default 3. */
  partitions?: number;
}

/**
 * One hour of events as lake columns, spread evenly over the hour, with the
 * simulator's ids and random generator. Each event draws its device, antenna
 * and app uniformly (unlike the simulator's generator, whose devices mostly
 * stay at one antenna), so with enough events the hour holds every device,
 * antenna and app of the lists, and many combinations of them.
 */
export function generateHour(o: GenOptions): EventColumns {
  const n = o.events;
  const r = createRandom(o.seed ?? 1);
  const partitions = o.partitions ?? 3;
  const antennas = Array.from({ length: o.antennas }, (_, i) => antennaId(i));
  const next = new Float64Array(partitions);
  const c = allocColumns(n);
  for (let i = 0; i < n; i++) {
    // Whole seconds, as on the wire.
    c.timestamp[i] = o.hour + Math.floor((i * 3600) / n) * 1000;
    c.id[i] = o.devices[r.int(o.devices.length)];
    c.antenna_id[i] = antennas[r.int(antennas.length)];
    c.app[i] = o.apps[r.int(o.apps.length)];
    c.bytes[i] = r.int(100_000);
    const p = i % partitions;
    c.partition[i] = p;
    c.offset[i] = next[p]++;
  }
  return c;
}

/**
 * Writes the hour's columns as the speed layer would: per Kafka partition,
 * `filesPerPartition` roll segments named by their offset range. Returns the
 * keys written.
 */
export async function writeLakeHour(
  store: ObjectStore,
  hour: number,
  c: EventColumns,
  filesPerPartition = 2,
): Promise<string[]> {
  const byPartition = new Map<number, number[]>();
  for (let i = 0; i < c.partition.length; i++) {
    let list = byPartition.get(c.partition[i]);
    if (!list) byPartition.set(c.partition[i], list = []);
    list.push(i);
  }
  const keys: string[] = [];
  for (const [p, idx] of byPartition) {
    idx.sort((a, b) => c.offset[a] - c.offset[b]);
    const per = Math.ceil(idx.length / filesPerPartition);
    for (let from = 0; from < idx.length; from += per) {
      const to = Math.min(idx.length, from + per);
      const part = pickRows(c, idx.slice(from, to));
      const key = hourPath(hour) +
        segmentFileName(p, part.offset[0], part.offset[to - from - 1]);
      await store.put(key, encodeColumns(part, to - from));
      keys.push(key);
    }
  }
  return keys;
}

/**
 * The batch layer's rows of one hour in bytes_hourly: metric → id → value.
 * A metric with two rows for one id fails the assertion.
 */
export async function hourlyRows(
  db: Queryable,
  hour: number,
): Promise<Map<string, Map<string, number>>> {
  const rows = await db.query<{ id: string; value: number; type: string }>(
    "SELECT id, value, type FROM bytes_hourly WHERE timestamp = $1::timestamp",
    [new Date(hour)],
  );
  const out = new Map<string, Map<string, number>>();
  for (const r of rows) {
    if (!out.has(r.type)) out.set(r.type, new Map());
    assert.ok(!out.get(r.type)!.has(r.id), `duplicate row ${r.type} ${r.id}`);
    out.get(r.type)!.set(r.id, Number(r.value));
  }
  return out;
}

export interface TestUser {
  id: string;
  name: string;
  email: string;
  quota: number;
}

/** Inserts user metadata rows (bulk). */
export async function insertUsers(db: Queryable, users: readonly TestUser[]): Promise<void> {
  for (let i = 0; i < users.length; i += 50_000) {
    const chunk = users.slice(i, i + 50_000);
    await db.query(
      `INSERT INTO user_metadata (id, name, email, quota)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[])`,
      [
        chunk.map((u) => u.id),
        chunk.map((u) => u.name),
        chunk.map((u) => u.email),
        chunk.map((
          u,
        ) => u.quota),
      ],
    );
  }
}
