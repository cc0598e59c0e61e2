/**
 * Shared set-up of the speed layer tests: a realistic plan (from YAML) on a
 * fresh topic, database and lake folder; producing generated items; reading
 * the `bytes` view; waiting for the layer to commit everything. The expected
 * totals are computed in each test, plainly, not here.
 */
import { delay } from "../../src/async/delay.ts";
import { Kafka, logLevel } from "kafkajs";
import { planFromYaml } from "../../src/config/load.ts";
import type { Plan } from "../../src/config/plan.ts";
import type { Db } from "../../src/db/db.ts";
import { createProducer } from "../../src/kafka/producer.ts";
import type { GeneratedItem } from "../../src/simulator/generator.ts";
import { type SpeedLayer, startSpeedLayer } from "../../src/speed/mod.ts";
import { createKafkaSource } from "../../src/kafka/mod.ts";
import type { DeadLetterSink } from "../../src/speed/mod.ts";
import { type ObjectStore, openStore } from "../../src/lake/mod.ts";
import type { Registry } from "../../src/metrics.ts";
import { parquetReadObjects } from "hyparquet";
import { freshDatabase, freshTopic, kafkaBrokers } from "./services.ts";

export interface PlanOptions {
  topic: string;
  group: string;
  dbUrl: string;
  lakeUri: string;
  windowMs?: number;
  latenessMs?: number;
  idleMs?: number;
  flushMs?: number;
  maxRows?: number;
  maxAgeMs?: number;
  gcsEndpoint?: string;
  compaction?: boolean;
  /** More top-level YAML sections (e.g. `batch:`), appended as they are. */
  extraYaml?: string;
  /** More keys of the `speed:` section (e.g. `quota_alerts:`), indented by two spaces. */
  speedYaml?: string;
}

/** Every aggregation, a filter and a two-field key, beside the three default metrics. */
export const METRICS_YAML = `
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id, aggregation: sum, field: bytes }
    - { name: user_bytes_total, group_by: id, aggregation: sum, field: bytes }
    - { name: app_bytes_total, group_by: app, aggregation: sum, field: bytes }
    - { name: antenna_devices, group_by: antenna_id, aggregation: count_distinct, field: id }
    - { name: app_antenna_max, group_by: [app, antenna_id], aggregation: max, field: bytes }
    - { name: app_min, group_by: app, aggregation: min, field: bytes }
    - name: messaging_events
      group_by: app
      aggregation: count
      filter: { in: { app: [SKYPE, WHATSAPP, TELEGRAM] } }
`;

/** A fresh topic, database and local lake, with a speed plan over them. */
export interface SpeedScene {
  readonly topic: string;
  readonly plan: Plan;
  readonly dbUrl: string;
  readonly dbName: string;
  readonly lakeDir: string;
  /** Drops the database and removes the lake folder. */
  drop(): Promise<void>;
}

/**
 * Creates a `SpeedScene` named after `prefix` (the group is `<topic>-g`);
 * `options` are passed on to `speedPlan`.
 */
export async function speedScene(
  prefix: string,
  partitions = 3,
  options: Omit<PlanOptions, "topic" | "group" | "dbUrl" | "lakeUri"> = {},
): Promise<SpeedScene> {
  const name = prefix.replaceAll("-", "_");
  const topic = await freshTopic(prefix, partitions);
  const fdb = await freshDatabase(name);
  const lakeDir = await Deno.makeTempDir({ prefix: `${name}_` });
  const plan = speedPlan({
    topic,
    group: `${topic}-g`,
    dbUrl: fdb.url,
    lakeUri: `file://${lakeDir}`,
    ...options,
  });
  return {
    topic,
    plan,
    dbUrl: fdb.url,
    dbName: fdb.name,
    lakeDir,
    async drop() {
      await fdb.drop();
      await Deno.remove(lakeDir, { recursive: true });
    },
  };
}

export function speedPlan(o: PlanOptions): Plan {
  return planFromYaml(speedPlanYaml(o), { env: {} });
}

/** The YAML of `speedPlan` (for child processes, which load a file). */
export function speedPlanYaml(o: PlanOptions): string {
  const ms = (v: number) => `${v}ms`;
  return (
    `
source:
  kind: kafka
  kafka:
    brokers: ${kafkaBrokers().join(",")}
    topic: ${o.topic}
    group: ${o.group}
    client_id: speed-test
    dead_letter_topic: ${o.topic}.dlq
    from_beginning: true
speed:
  window: ${ms(o.windowMs ?? 60_000)}
  allowed_lateness: ${ms(o.latenessMs ?? 5_000)}
  idle_timeout: ${ms(o.idleMs ?? 1_000)}
  flush_interval: ${ms(o.flushMs ?? 200)}
${METRICS_YAML}${o.speedYaml ?? ""}
lake:
  uri: ${o.lakeUri}
  ${o.gcsEndpoint ? `gcs_endpoint: ${o.gcsEndpoint}\n  gcs_project_id: test` : ""}
  roll: { max_rows: ${o.maxRows ?? 400}, max_bytes: 64MiB, max_age: ${ms(o.maxAgeMs ?? 1_000)} }
  compaction: { enabled: ${o.compaction ?? false}, after: 1m }
database:
  url: ${o.dbUrl}
${o.extraYaml ?? ""}`
  );
}

/** Produces the items (keyed by device id, partitioned like the simulator). */
export async function produce(
  topic: string,
  items: readonly { key: string | null; value: Uint8Array | string | null; partition?: number }[],
): Promise<void> {
  const p = await createProducer({ brokers: kafkaBrokers(), clientId: "speed-test-producer" });
  try {
    await p.send(topic, items);
  } finally {
    await p.close();
  }
}

/** Next offset per partition (the end of the log). */
export async function endOffsets(topic: string): Promise<Map<number, number>> {
  const kafka = new Kafka({ brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offs = await admin.fetchTopicOffsets(topic);
    return new Map(offs.map((o) => [o.partition, Number(o.high)]));
  } finally {
    await admin.disconnect();
  }
}

export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 30_000,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await delay(100);
  }
}

/**
 * Waits until the layer has stored (and, unless `storedOnly`, committed) every
 * offset of the topic. Commits also wait for the lake's files, so with a long
 * roll age only `storedOnly` returns before stop().
 */
export async function waitCommitted(
  layer: SpeedLayer,
  topic: string,
  timeoutMs = 60_000,
  storedOnly = false,
) {
  const ends = await endOffsets(topic);
  await waitFor("all offsets committed", () => {
    const parts = layer.status().partitions;
    let ok = 0;
    for (const [p, end] of ends) {
      const st = parts.find((x) => x.partition === p);
      if (
        end === 0 || (st && (storedOnly || st.committedOffset >= end) && st.storedOffset >= end)
      ) {
        ok++;
      }
    }
    return ok === ends.size;
  }, timeoutMs);
}

/** The `bytes` view as `type|timestamp ms|id` → value. */
export async function readBytes(db: Db): Promise<Map<string, number>> {
  const rows = await db.query<{ timestamp: Date; id: string; value: number; type: string }>(
    `SELECT "timestamp", id, value, type FROM bytes`,
  );
  return new Map(rows.map((r) => [`${r.type}|${r.timestamp.getTime()}|${r.id}`, Number(r.value)]));
}

/** Items that carry a valid event (malformed ones dropped). */
export function validEvents(items: readonly GeneratedItem[]) {
  return items.filter((i) => i.event).map((i) => i.event!);
}

/** Sorted entries, for readable assertion diffs. */
export function sorted(m: Map<string, number>): [string, number][] {
  return [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/**
 * Expected `bytes` rows of METRICS_YAML for events none of which is dropped,
 * computed directly from the events: `type|window start ms|id` → value.
 */
export function referenceTotals(
  events: readonly {
    bytes: number;
    timestamp: number;
    app: string;
    id: string;
    antenna_id: string;
  }[],
  windowMs: number,
): Map<string, number> {
  const out = new Map<string, number>();
  const members = new Map<string, Set<string>>();
  const put = (key: string, v: number, how: "sum" | "min" | "max") => {
    const prev = out.get(key);
    if (prev === undefined) out.set(key, v);
    else if (how === "sum") out.set(key, prev + v);
    else if (how === "min") out.set(key, Math.min(prev, v));
    else out.set(key, Math.max(prev, v));
  };
  for (const e of events) {
    const w = Math.floor((e.timestamp * 1000) / windowMs) * windowMs;
    put(`antenna_bytes_total|${w}|${e.antenna_id}`, e.bytes, "sum");
    put(`user_bytes_total|${w}|${e.id}`, e.bytes, "sum");
    put(`app_bytes_total|${w}|${e.app}`, e.bytes, "sum");
    put(`app_antenna_max|${w}|${e.app}|${e.antenna_id}`, e.bytes, "max");
    put(`app_min|${w}|${e.app}`, e.bytes, "min");
    if (["SKYPE", "WHATSAPP", "TELEGRAM"].includes(e.app)) {
      put(`messaging_events|${w}|${e.app}`, 1, "sum");
    }
    const k = `antenna_devices|${w}|${e.antenna_id}`;
    if (!members.has(k)) members.set(k, new Set());
    members.get(k)!.add(e.id);
  }
  for (const [k, s] of members) out.set(k, s.size);
  return out;
}

/** Starts a layer on `plan` with a Kafka source (and the plan's DLQ topic when `dlq`). */
export async function startOnKafka(
  plan: Plan,
  db: Db,
  registry: Registry,
  opts: { dlq?: DeadLetterSink; clock?: () => number } = {},
): Promise<{ layer: SpeedLayer; store: ObjectStore }> {
  const k = plan.source.kafka;
  const source = createKafkaSource({
    brokers: k.brokers,
    clientId: k.clientId,
    topic: k.topic,
    group: k.group,
    fromBeginning: true,
  });
  const store = openStore(plan.lake);
  const layer = await startSpeedLayer({
    plan,
    db,
    store,
    source,
    registry,
    deadLetters: opts.dlq,
    clock: opts.clock,
  });
  return { layer, store };
}

/** One lake row, read back with hyparquet. */
export interface LakeRow {
  key: string;
  timestamp: Date;
  id: string;
  antenna_id: string;
  app: string;
  bytes: bigint;
  partition: number;
  offset: bigint;
}

/** Every row of every Parquet file in the store (staging files excluded). */
export async function readLake(store: ObjectStore): Promise<LakeRow[]> {
  const out: LakeRow[] = [];
  for (const e of await store.list("")) {
    if (!e.key.endsWith(".parquet") || e.key.startsWith("_")) continue;
    const bytes = await store.get(e.key);
    const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    const rows = await parquetReadObjects({ file: file as ArrayBuffer });
    for (const r of rows) out.push({ key: e.key, ...r } as LakeRow);
  }
  return out;
}
