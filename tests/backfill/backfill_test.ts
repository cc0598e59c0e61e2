/**
 * The backfill on real Kafka, PostgreSQL and a lake on the GCS emulator: a
 * speed layer runs on a plan, a switch adds a metric (with a filter) and
 * changes another's filter at the stored offsets, a layer on the new plan
 * goes on from there while the worker replays the lake below the switch,
 * crashing half-way and resumed by another worker. Every window of every
 * metric ends as the test computes it from the produced events: the new
 * metric's past and live parts meet at the switch, the changed one is
 * recomputed under its new filter, the untouched one is exact. Then `deno
 * task backfill` recomputes a range by hand, and drops a removed metric.
 */
import assert from "node:assert/strict";
import { planFromYaml } from "../../src/config/load.ts";
import type { Plan } from "../../src/config/plan.ts";
import type { Db, Queryable } from "../../src/db/db.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { createKafkaSource } from "../../src/kafka/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import { createLogger } from "../../src/log.ts";
import { Registry } from "../../src/metrics.ts";
import { createGenerator, type GeneratedItem } from "../../src/simulator/generator.ts";
import { startSpeedLayer } from "../../src/speed/mod.ts";
import { createBackfillWorker, dropMetric, switchAtStoredOffsets } from "../../src/backfill/mod.ts";
import { main as backfillMain } from "../../src/cli/backfill.ts";
import {
  freshDatabase,
  freshTopic,
  gcsEndpoint,
  kafkaBrokers,
  uniqueName,
} from "../_support/services.ts";
import {
  produce,
  readBytes,
  sorted,
  validEvents,
  waitCommitted,
  waitFor,
} from "../_support/speed_fixture.ts";

const HOUR = 3_600_000;
const WINDOW = 300_000;
const quiet = createLogger({ test: "backfill" });

const M_ANTENNA = "    - { name: antenna_bytes_total, group_by: antenna_id }";
const M_EVENTS_OLD =
  "    - { name: app_events, group_by: app, aggregation: count, filter: { in: { app: [SKYPE, WHATSAPP] } } }";
const M_EVENTS_NEW =
  "    - { name: app_events, group_by: app, aggregation: count, filter: { in: { app: [FACEBOOK] } } }";
const M_DEVICES =
  "    - { name: messaging_devices, group_by: antenna_id, aggregation: count_distinct, field: id, filter: { in: { app: [SKYPE, WHATSAPP, TELEGRAM] } } }";

function yaml(o: { topic: string; dbUrl: string; lakeUri: string; metrics: string[] }): string {
  return `source:
  kind: kafka
  kafka:
    brokers: ${kafkaBrokers().join(",")}
    topic: ${o.topic}
    group: ${o.topic}-g
    dead_letter_topic: ${o.topic}.dlq
speed:
  window: 5m
  allowed_lateness: 5s
  idle_timeout: 1s
  flush_interval: 200ms
  metrics:
${o.metrics.join("\n")}
lake:
  uri: ${o.lakeUri}
  gcs_endpoint: ${gcsEndpoint()}
  gcs_project_id: test
  roll: { max_rows: 500, max_bytes: 64MiB, max_age: 1s }
  compaction: { enabled: false }
batch:
  enabled: false
  metrics: []
database:
  url: ${o.dbUrl}
`;
}

/** What the windows must hold, computed plainly: `type|window|id` → value. */
function expected(items: readonly GeneratedItem[]): Map<string, number> {
  const out = new Map<string, number>();
  const members = new Map<string, Set<string>>();
  const add = (k: string, v: number) => out.set(k, (out.get(k) ?? 0) + v);
  for (const e of validEvents(items)) {
    const w = Math.floor((e.timestamp * 1000) / WINDOW) * WINDOW;
    add(`antenna_bytes_total|${w}|${e.antenna_id}`, e.bytes);
    if (e.app === "FACEBOOK") add(`app_events|${w}|${e.app}`, 1);
    if (["SKYPE", "WHATSAPP", "TELEGRAM"].includes(e.app)) {
      const k = `messaging_devices|${w}|${e.antenna_id}`;
      if (!members.has(k)) members.set(k, new Set());
      members.get(k)!.add(e.id);
    }
  }
  for (const [k, s] of members) out.set(k, s.size);
  return out;
}

async function startLayer(plan: Plan, db: Db) {
  const k = plan.source.kafka;
  const source = createKafkaSource({
    brokers: k.brokers,
    clientId: "backfill-test",
    topic: k.topic,
    group: k.group,
    fromBeginning: true,
  });
  return await startSpeedLayer({
    plan,
    db,
    store: openStore(plan.lake),
    source,
    registry: new Registry(),
    log: quiet,
  });
}

/** A database whose `fail`-th transaction (counting from when armed) throws: a crash mid-backfill. */
function crashing(db: Db, fail: number): Db & { armed: boolean } {
  let n = 0;
  const out = {
    kind: db.kind,
    armed: true,
    query: <T>(sql: string, params?: readonly unknown[]) => db.query<T>(sql, params),
    exec: (sql: string) => db.exec(sql),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>) => {
      if (out.armed && ++n === fail) return Promise.reject(new Error("simulated crash"));
      return db.transaction(fn);
    },
    close: () => db.close(),
  };
  return out;
}

Deno.test({
  name:
    "a switch adds a metric and changes another: the lake's past below the switch and the live windows from it add up to exact windows (GCS lake, a worker crashes half-way)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const topic = await freshTopic("backfill", 3);
    const fresh = await freshDatabase("backfill");
    const bucket = uniqueName("backfill").replaceAll("_", "-");
    const o = { topic, dbUrl: fresh.url, lakeUri: `gs://${bucket}/raw` };
    const p1 = planFromYaml(yaml({ ...o, metrics: [M_ANTENNA, M_EVENTS_OLD] }), { env: {} });
    const p2 = planFromYaml(yaml({ ...o, metrics: [M_ANTENNA, M_EVENTS_NEW, M_DEVICES] }), {
      env: {},
    });
    const startMs = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR + 10 * 60_000;
    const gen = createGenerator({
      seed: 11,
      devices: 30,
      antennas: 4,
      startMs,
      rate: 0.4,
      lateShare: 0.1,
      maxLatenessMs: 4_000,
    });
    const items = Array.from({ length: 2_400 }, () => gen.next());
    const db = await openDb({ url: fresh.url });
    try {
      await migrate(db);
      // Two hours of the old plan.
      await produce(topic, items.slice(0, 1_800).map((i) => ({ key: i.key, value: i.value })));
      let layer = await startLayer(p1, db);
      await waitCommitted(layer, topic);
      await layer.stop();

      // The switch, at the stored offsets, then the new plan from there.
      const offsets = await switchAtStoredOffsets(db, {
        topic,
        next: p2,
        jobs: [
          { metric: p2.speed.metrics[2], reason: "added" },
          { metric: p2.speed.metrics[1], reason: "changed" },
        ],
        removed: [],
        nowMs: Date.now(),
        generation: 2,
      });
      assert.equal([...offsets.values()].reduce((a, b) => a + b, 0), 1_800);
      layer = await startLayer(p2, db);
      await produce(topic, items.slice(1_800).map((i) => ({ key: i.key, value: i.value })));

      // The first worker dies on its third chunk; another takes its rows over at once.
      const flaky = crashing(db, 3);
      const first = createBackfillWorker({
        db: flaky,
        store: openStore(p2.lake),
        topic,
        plan: () => p2,
        log: quiet,
        holder: { id: "crashed:1", gone: () => false },
        restRatio: 0,
        chunkEvents: 150,
        pollMs: 100,
      });
      await assert.rejects(first.drain(), /simulated crash/);
      const mid = (await first.status()).metrics;
      assert.ok(mid.some((m) => m.progress > 0 && m.progress < 1), JSON.stringify(mid));
      const second = createBackfillWorker({
        db,
        store: openStore(p2.lake),
        topic,
        plan: () => p2,
        log: quiet,
        holder: { id: "second:2", gone: (h) => h === "crashed:1" },
        restRatio: 0,
        chunkEvents: 150,
        pollMs: 100,
      });
      assert.equal(await second.drain(), "done");
      const status = await second.status();
      assert.equal(status.active, false);
      assert.deepEqual(
        status.metrics.map((m) => [m.metric, m.state, m.progress, m.reason]).sort(),
        [["app_events", "finished", 1, "changed"], ["messaging_devices", "finished", 1, "added"]],
      );

      assert.ok(status.metrics.every((m) => m.events > 0 && m.rowsWritten > 0));
      const want = expected(items);
      // The new metric has windows on both sides of the switch (75 minutes in).
      const switchAt = startMs + 1_800 * 2_500;
      const windows = [...want.keys()].filter((k) => k.startsWith("messaging_devices|"))
        .map((k) => Number(k.split("|")[1]));
      assert.ok(windows.some((w) => w < switchAt - WINDOW) && windows.some((w) => w > switchAt));
      await waitCommitted(layer, topic);
      const last = Math.max(...[...want.keys()].map((k) => Number(k.split("|")[1])));
      await waitFor("every partition past the last window", async () => {
        const [{ wm }] = await db.query<{ wm: Date | null }>(
          "SELECT min(watermark) AS wm FROM speed_progress WHERE topic = $1",
          [topic],
        );
        return wm !== null && wm.getTime() >= last + WINDOW;
      });
      await layer.stop();
      assert.deepEqual(sorted(await readBytes(db)), sorted(want));

      // By hand: one hour again (its rows deleted and replayed up to the stored offsets).
      const dir = await Deno.makeTempDir({ prefix: "backfill_cli_" });
      const file = `${dir}/pipeline.yaml`;
      await Deno.writeTextFile(file, yaml({ ...o, metrics: [M_ANTENNA, M_EVENTS_NEW, M_DEVICES] }));
      const hour = new Date(startMs + HOUR).toISOString().slice(0, 13);
      assert.equal(
        await backfillMain([
          "--metric",
          "messaging_devices",
          "--from",
          hour,
          "--to",
          hour,
          "--config",
          file,
        ]),
        0,
      );
      assert.deepEqual(sorted(await readBytes(db)), sorted(want));

      // A removed metric keeps its rows until dropped; an active one cannot be dropped.
      await assert.rejects(dropMetric(db, p2, "app_events"), /is a metric of/);
      const p3 = planFromYaml(yaml({ ...o, metrics: [M_ANTENNA, M_DEVICES] }), { env: {} });
      await db.query("DELETE FROM metric_definitions WHERE name = 'app_events'");
      const counts = await dropMetric(db, p3, "app_events");
      assert.ok(counts.speed_windows > 0);
      const left = sorted(await readBytes(db)).filter(([k]) => k.startsWith("app_events|"));
      assert.deepEqual(left, []);
      await Deno.remove(dir, { recursive: true });
    } finally {
      await db.close();
      await fresh.drop();
    }
  },
});
