/**
 * Edits of pipeline.yaml that change history, through `main.ts start` on
 * real Kafka, PostgreSQL and a local lake, while events stream: a speed
 * metric's filter changes (its windows are recomputed under the new filter,
 * past included), a batch metric is added (the hours already batched run
 * again and get it), a speed metric is removed (it gets no new rows; its past
 * rows stay).
 *
 * The speed-layer part goes through the live switch seam (see the note in
 * tests/cli/start_reload_test.ts).
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createGenerator, type GeneratedItem } from "../../src/simulator/generator.ts";
import { freshDatabase, freshTopic, kafkaBrokers } from "../_support/services.ts";
import { produce, sorted, validEvents } from "../_support/speed_fixture.ts";
import { closed, spawnStart, streamLive, until } from "../_support/start_process.ts";

const HOUR = 3_600_000;
const WINDOW = 300_000;

const EVENTS_OLD =
  "    - { name: app_events, group_by: app, aggregation: count, filter: { in: { app: [SKYPE, WHATSAPP] } } }\n";
const EVENTS_NEW =
  "    - { name: app_events, group_by: app, aggregation: count, filter: { in: { app: [FACEBOOK, TELEGRAM] } } }\n";
const USER = "    - { name: user_bytes_total, group_by: id }\n";
const APP_COUNT = "    - { name: app_count, group_by: app, aggregation: count }\n";

function config(
  o: { topic: string; dbUrl: string; dir: string; port: number },
  speed: string,
  batch: string,
) {
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
  idle_timeout: 10s
  flush_interval: 200ms
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id }
${speed}lake:
  uri: file://${o.dir}/lake
  roll: { max_rows: 2000, max_bytes: 64MiB, max_age: 1s }
  compaction: { enabled: false }
batch:
  grace: 10s
  tick: 1s
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id, reconcile_with: antenna_bytes_total }
${batch}database:
  url: ${o.dbUrl}
api:
  port: ${o.port}
`;
}

Deno.test({
  name:
    "start: a changed filter recomputes the metric's history, an added batch metric re-runs the batched hours, a removed metric gets no new rows and keeps its past",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const topic = await freshTopic("reload-batch", 3);
    const fresh = await freshDatabase("reload_batch");
    const dir = await Deno.makeTempDir({ prefix: "reload_batch_" });
    const o = { topic, dbUrl: fresh.url, dir, port: 18643 };
    const file = `${dir}/pipeline.yaml`;
    await Deno.writeTextFile(file, config(o, EVENTS_OLD + USER, ""));

    const h0 = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
    const gen = createGenerator({
      seed: 9,
      devices: 30,
      antennas: 4,
      startMs: h0,
      rate: 0.5,
      lateShare: 0.1,
      maxLatenessMs: 3_000,
    });
    const pastCount = Math.floor((Date.now() - 60_000 - h0) / 2_000);
    const past = Array.from({ length: pastCount }, () => gen.next());
    await produce(topic, past.map((i) => ({ key: i.key, value: i.value })));

    const start = spawnStart(file, `${dir}/start.log`, o.port);
    const live = await streamLive(topic, {
      seed: 10,
      devices: 30,
      antennas: 4,
      perSecond: 50,
      maxLatenessMs: 3_000,
    });
    const sql = postgres(fresh.url, { max: 1, onnotice: () => {} });
    const generation = (n: number) =>
      until(`generation ${n}`, async () => {
        const c = (await start.get("/api/v1/config")).body;
        return c.generation === n ? c : undefined;
      }, 30_000);
    const stored = async () =>
      Number(
        (await sql`SELECT COALESCE(sum(next_offset), 0)::bigint AS n FROM speed_progress
        WHERE topic = ${topic}`)[0].n,
      );
    try {
      // Both past hours batched under the first plan.
      await until("both past hours batched", async () => {
        const rows = await sql`SELECT hour FROM batch_hours WHERE hour IN (${new Date(
          h0,
        )}, ${new Date(h0 + HOUR)})`;
        return rows.length === 2 ? true : undefined;
      }, 120_000);

      // Edit 1: a filter changes, a batch metric is added.
      await Deno.writeTextFile(file, config(o, EVENTS_NEW + USER, APP_COUNT));
      const g2 = await generation(2);
      assert.equal(g2.rejected, null);
      await until("the backfill and the batch re-runs done", async () => {
        const b = (await start.get("/api/v1/config")).body.backfill as {
          active: boolean;
          metrics: { metric: string; state: string }[];
          batchHours: { queued: number; finished: number };
        };
        return !b.active && b.batchHours.finished >= 2 &&
            b.metrics.some((m) => m.metric === "app_events" && m.state === "finished")
          ? true
          : undefined;
      }, 120_000);
      const runs = await sql`SELECT hour, status FROM batch_runs WHERE trigger = 'backfill'
        ORDER BY hour`;
      assert.deepEqual(
        runs.map((r) => [(r.hour as Date).getTime(), r.status]),
        [[h0, "succeeded"], [h0 + HOUR, "succeeded"]],
      );

      // Edit 2: user_bytes_total is removed.
      await Deno.writeTextFile(file, config(o, EVENTS_NEW, APP_COUNT));
      await generation(3);
      const snapshot = async (type: string) =>
        (await sql`SELECT count(*)::int AS n, COALESCE(sum(value), 0)::bigint AS v
          FROM speed_partials WHERE type = ${type}`)[0];
      const userBefore = await snapshot("user_bytes_total");
      const antennaBefore = await snapshot("antenna_bytes_total");
      const n = await stored();
      await until(
        "more events counted",
        async () => (await stored()) > n + 100 ? true : undefined,
        30_000,
      );
      const antennaAfter = await snapshot("antenna_bytes_total");
      assert.ok(Number(antennaAfter.v) > Number(antennaBefore.v), "the stream goes on");
      assert.deepEqual(await snapshot("user_bytes_total"), userBefore, "no new rows");
      assert.ok(userBefore.n > 0, "its past rows stay");

      const items: GeneratedItem[] = [...past, ...await live.stop()];
      await until(
        "every event stored",
        async () => (await stored()) >= items.length ? true : undefined,
        60_000,
      );

      // The changed metric, every window: the new filter, past included.
      const want = new Map<string, number>();
      const perHour = new Map<string, number>();
      for (const e of validEvents(items)) {
        const t = e.timestamp * 1000;
        const w = Math.floor(t / WINDOW) * WINDOW;
        if (["FACEBOOK", "TELEGRAM"].includes(e.app)) {
          const k = `${w}|${e.app}`;
          want.set(k, (want.get(k) ?? 0) + 1);
        }
        const h = Math.floor(t / HOUR) * HOUR;
        if (h === h0 || h === h0 + HOUR) {
          const k = `${h}|${e.app}`;
          perHour.set(k, (perHour.get(k) ?? 0) + 1);
        }
      }
      const read = async () =>
        new Map(
          (await sql`SELECT "timestamp", id, value FROM bytes WHERE type = 'app_events'`).map((
            r,
          ) => [`${(r.timestamp as Date).getTime()}|${r.id}`, Number(r.value)]),
        );
      await until("every partition past the last window", () => closed(sql, topic, want), 60_000);
      assert.deepEqual(sorted(await read()), sorted(want));

      // The added batch metric, in the re-run hours.
      const hourly = await sql`SELECT "timestamp", id, value FROM bytes_hourly
        WHERE type = 'app_count' AND "timestamp" IN (${new Date(h0)}, ${new Date(h0 + HOUR)})`;
      assert.deepEqual(
        sorted(
          new Map(
            hourly.map((r) => [`${(r.timestamp as Date).getTime()}|${r.id}`, Number(r.value)]),
          ),
        ),
        sorted(perHour),
      );

      const catalog = (await start.get("/api/v1/metrics")).body.metrics as { name: string }[];
      assert.deepEqual(catalog.map((m) => m.name).sort(), [
        "antenna_bytes_total",
        "app_count",
        "app_events",
      ]);
      assert.equal(await start.stop(), 0);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- start's log ---\n${start.tail()}`, {
        cause: e,
      });
    } finally {
      await live.stop().catch(() => {});
      start.kill();
      await sql.end();
      await fresh.drop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
