/**
 * Issue 18: "A cluster that is down does not stop the speed layer or the
 * API", and "new or changed batch metrics re-run their hours on the
 * configured engine". `main.ts start` (real Kafka, PostgreSQL, a local lake)
 * batches a past hour in process; then pipeline.yaml is edited while it runs:
 * `batch.engine: spark` on a standalone master that nothing listens on, and a
 * new batch metric. The hour's backfill run goes to Spark and fails there
 * (killed at `batch.spark.timeout`, the engine's message in `batch_runs`),
 * changing no batch row, while the API answers and the speed layer consumes
 * every event, its live windows equal to the test's own sums.
 */
import assert from "node:assert/strict";
import { createGenerator, type GeneratedItem } from "../../src/simulator/generator.ts";
import { freshDatabase, freshTopic, kafkaBrokers } from "../_support/services.ts";
import { endOffsets, produce, validEvents } from "../_support/speed_fixture.ts";
import { insertTestUsers, testUsers } from "../_support/hourly_expect.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { stackUp } from "../../src/stack/mod.ts";
import { freePort, spawnStart, until } from "../_support/start_process.ts";

const HOUR = 3_600_000;

Deno.test({
  name:
    "batch.engine spark with its cluster down: a new metric's re-run goes to Spark and fails with its message, writing nothing; the API answers and the speed layer counts every event",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // Spark installed (its spark-sql is what times out), the stack's cluster left alone.
    await stackUp(["spark"]);
    const topic = await freshTopic("sparkdown", 2);
    const fresh = await freshDatabase("sparkdown");
    const dir = await Deno.makeTempDir({ prefix: "sparkdown_" });
    const apiPort = freePort();
    const deadMaster = `spark://127.0.0.1:${freePort()}`;
    const past = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
    const now = Date.now();
    const generated = (startMs: number, n: number, seed: number): GeneratedItem[] => {
      const gen = createGenerator({
        seed,
        devices: 50,
        antennas: 5,
        startMs,
        rate: 3,
        lateShare: 0,
      });
      return Array.from({ length: n }, () => gen.next());
    };
    // Minutes of a past hour (its run is due at once) and of the current one (100 s, ending 20 s ago).
    const items = [...generated(past, 600, 1), ...generated(now - 120_000, 300, 2)];
    await produce(topic, items.map((x) => ({ key: x.key, value: x.value })));
    const events = validEvents(items);
    const db = await openDb({ url: fresh.url });
    await migrate(db);
    await insertTestUsers(db, testUsers([...new Set(events.map((e) => e.id))].sort(), 1e12));
    const config = `${dir}/pipeline.yaml`;
    const group = `sparkdown-${crypto.randomUUID()}`;
    const write = (engine: string, metrics: string) =>
      Deno.writeTextFile(
        config,
        `source:
  kind: kafka
  kafka:
    brokers: ${kafkaBrokers().join(",")}
    topic: ${topic}
    group: ${group}
    dead_letter_topic: ${topic}.dlq
lake:
  uri: file://${dir}/lake
  roll: { max_rows: 50000, max_bytes: 64MiB, max_age: 2s }
database:
  url: ${fresh.url}
api:
  port: ${apiPort}
batch:
  tick: 1s
  engine: ${engine}
  spark:
    master: ${deadMaster}
    timeout: 10s
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id, aggregation: sum, field: bytes }
${metrics}`,
      );
    const runsOf = (hour: number) =>
      db.query<{ status: string; trigger: string; error: string | null }>(
        "SELECT status, trigger, error FROM batch_runs WHERE hour = $1::timestamp ORDER BY run_id",
        [new Date(hour)],
      );
    const hourly = async () =>
      new Map(
        (await db.query<{ type: string; id: string; value: number }>(
          "SELECT type, id, value FROM bytes_hourly WHERE timestamp = $1::timestamp",
          [new Date(past)],
        )).map((r) => [`${r.type}|${r.id}`, Number(r.value)]),
      );
    const pastTotals = new Map<string, number>();
    for (const e of events) {
      if (e.timestamp * 1000 >= past + HOUR) continue;
      const k = `antenna_bytes_total|${e.antenna_id}`;
      pastTotals.set(k, (pastTotals.get(k) ?? 0) + e.bytes);
    }
    // First the process engine batches the past hour…
    await write("process", "");
    const start = spawnStart(config, `${dir}/start.log`, apiPort);
    try {
      await until(
        "the past hour batched in process",
        async () => (await runsOf(past)).some((r) => r.status === "succeeded") ? true : undefined,
        120_000,
      );
      assert.deepEqual(await hourly(), pastTotals);

      // …then the engine becomes Spark on a cluster that is down, and a new batch
      // metric asks for the hour again: its run goes to Spark and fails there.
      await write(
        "spark",
        "    - { name: app_events, group_by: app, aggregation: count }\n",
      );
      const failed = await until(
        "the re-run on Spark failed",
        async () =>
          (await runsOf(past)).find((r) => r.trigger === "backfill" && r.status === "failed"),
        180_000,
      );
      assert.match(
        failed.error ?? "",
        /^Spark did not finish the hour within 10s \(batch\.spark\.timeout\)/,
      );
      assert.deepEqual(await hourly(), pastTotals, "the failed run changed no batch row");

      // The API and the speed layer went on meanwhile.
      const health = await start.get("/health");
      assert.equal(health.status, 200);
      const total = [...(await endOffsets(topic)).values()].reduce((a, b) => a + b, 0);
      assert.equal(total, items.length);
      await until("every event consumed", async () => {
        const [{ n }] = await db.query<{ n: number }>(
          "SELECT COALESCE(sum(next_offset), 0)::bigint AS n FROM speed_progress",
        );
        return Number(n) === total ? true : undefined;
      }, 60_000);
      const want = new Map<string, number>();
      for (const e of events) {
        if (e.timestamp * 1000 < past + HOUR) continue;
        want.set(e.antenna_id, (want.get(e.antenna_id) ?? 0) + e.bytes);
      }
      const rows = await db.query<{ id: string; v: number }>(
        `SELECT id, sum(value)::bigint AS v FROM bytes_live
         WHERE type = 'antenna_bytes_total' AND timestamp >= $1::timestamp GROUP BY id`,
        [new Date(past + HOUR)],
      );
      assert.deepEqual(
        new Map(rows.map((r) => [r.id, Number(r.v)])),
        want,
        "live windows hold the current events, each once",
      );
    } finally {
      await start.stop();
      await db.close();
      await fresh.drop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
