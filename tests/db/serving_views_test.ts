/**
 * The serving views on real PostgreSQL: serving_hourly folds the speed
 * layer's 5-minute windows into hours (SUM, or MAX for a max metric) until
 * the batch layer completes the hour, then shows the batch value; speed-only
 * metrics stay speed; serving_5m and batch_reconciliation; the series
 * queries use the key or the BRIN index of speed_partials.
 */
import assert from "node:assert/strict";
import { freshDatabase } from "../_support/services.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import { createBatchRunner } from "../../src/batch/mod.ts";
import { generateHour, insertUsers, testPlan, writeLakeHour } from "../_support/batch.ts";
import { deviceId } from "../../src/simulator/mod.ts";
import { createLogger } from "../../src/log.ts";
import { mergedHourlySql } from "../../src/api/_serving_sql.ts";

const H = Date.UTC(2026, 10, 28, 10);
const W = 300_000;
const DAY = 86_400_000;
/** Every id of a metric over a range, as a dashboard asks a view. */
const VIEW_DAY = (view: string) =>
  `SELECT id, value FROM ${view}
   WHERE type = $1 AND timestamp >= $2::timestamp AND timestamp < $3::timestamp`;

Deno.test("serving_hourly switches an hour from speed to batch once it is batched", async () => {
  const fresh = await freshDatabase("serving");
  const db = await openDb({ url: fresh.url, maxConnections: 2 });
  const dir = await Deno.makeTempDir({ prefix: "serving_lake_" });
  try {
    await migrate(db);
    await insertUsers(db, [{ id: deviceId(1), name: "A", email: "a@x", quota: 1e9 }]);
    // The speed layer's state: metrics, one partition whose watermark is past
    // the hour, and partial rows for each 5-minute window of hour H.
    await db.query(
      `INSERT INTO speed_metrics (type, aggregation, window_ms) VALUES
         ('antenna_bytes_total', 'sum', $1), ('user_bytes_total', 'sum', $1),
         ('app_bytes_total', 'sum', $1), ('peak_bytes', 'max', $1)`,
      [W],
    );
    await db.query(
      `INSERT INTO speed_progress (topic, "partition", next_offset, lake_offset, clock_ms, watermark)
       VALUES ('devices', 0, 100, 100, $1, $2::timestamp)`,
      [H + 2 * 3_600_000, new Date(H + 2 * 3_600_000)],
    );
    const windows = Array.from({ length: 12 }, (_, i) => H + i * W);
    const partial = (type: string, id: string, value: (i: number) => number) =>
      db.query(
        `INSERT INTO speed_partials (type, "timestamp", id, "partition", value, window_end)
         SELECT $1, to_timestamp(t / 1000.0) AT TIME ZONE 'UTC', $2, 0, v,
           to_timestamp((t + $5) / 1000.0) AT TIME ZONE 'UTC'
         FROM unnest($3::bigint[], $4::bigint[]) AS u(t, v)`,
        [type, id, windows, windows.map((_, i) => value(i)), W],
      );
    await partial("antenna_bytes_total", "ant-1", () => 10); // 120 in the hour
    await partial("user_bytes_total", deviceId(1), () => 10);
    await partial("peak_bytes", "ant-1", (i) => [5, 7, 3][i % 3]); // max 7, not the sum
    // …and the hourly totals the speed layer keeps beside its additive partials
    // (sql/012_speed_hourly.sql), which the reconciliation reads.
    await db.query(
      `INSERT INTO speed_hourly (type, hour, "partition", value, last_window_end)
       SELECT p.type, date_trunc('hour', p."timestamp"), p."partition", sum(p.value), max(p.window_end)
       FROM speed_partials p JOIN speed_metrics m ON m.type = p.type AND m.aggregation = 'sum'
       GROUP BY 1, 2, 3`,
    );

    const hourly = async () =>
      await db.query<{ id: string; value: number; type: string; source: string }>(
        `SELECT id, value, type, source FROM serving_hourly
         WHERE timestamp = $1::timestamp AND id IN ('ant-1', $2) ORDER BY type, id`,
        [new Date(H), deviceId(1)],
      );
    assert.deepEqual(await hourly(), [
      { id: "ant-1", value: 120, type: "antenna_bytes_total", source: "speed" },
      { id: "ant-1", value: 7, type: "peak_bytes", source: "speed" },
      { id: deviceId(1), value: 10 * 12, type: "user_bytes_total", source: "speed" },
    ]);
    const fiveMin = await db.query<{ n: number; source: string }>(
      `SELECT count(*)::bigint AS n, min(source) AS source FROM serving_5m
       WHERE type = 'antenna_bytes_total' AND id = 'ant-1'`,
    );
    assert.deepEqual(fiveMin, [{ n: 12, source: "speed" }]);

    // The lake says 110 for ant-1 (the speed layer dropped a late event, say).
    const cols = generateHour({
      hour: H,
      events: 2,
      devices: [deviceId(1)],
      antennas: 1,
      apps: ["X"],
    });
    cols.antenna_id = ["ant-1", "ant-1"];
    cols.bytes.set([50, 60]);
    const plan = testPlan({ lakeUri: `file://${dir}` });
    const store = openStore(plan.lake);
    await writeLakeHour(store, H, cols, 1);
    const runner = createBatchRunner({ plan, db, store, log: createLogger({ test: "serving" }) });
    assert.equal((await runner.runHour(H, "manual")).status, "succeeded");

    assert.deepEqual(await hourly(), [
      { id: "ant-1", value: 110, type: "antenna_bytes_total", source: "batch" },
      { id: "ant-1", value: 7, type: "peak_bytes", source: "speed" },
      { id: deviceId(1), value: 120, type: "user_bytes_total", source: "speed" },
    ]);
    const email = await db.query(
      "SELECT id, value, source FROM serving_hourly WHERE type = 'email_bytes_total'",
    );
    assert.deepEqual(email, [{ id: "a@x", value: 110, source: "batch" }]);
    const rec = await db.query(
      `SELECT metric, speed_metric, batch_value, speed_value, difference
       FROM batch_reconciliation WHERE hour = $1::timestamp ORDER BY metric`,
      [new Date(H)],
    );
    assert.deepEqual(rec, [
      {
        metric: "antenna_bytes_total",
        speed_metric: "antenna_bytes_total",
        batch_value: 110,
        speed_value: 120,
        difference: -10,
      },
      {
        metric: "app_bytes_total",
        speed_metric: "app_bytes_total",
        batch_value: 110,
        speed_value: 0,
        difference: 110,
      },
      {
        metric: "email_bytes_total",
        speed_metric: "user_bytes_total",
        batch_value: 110,
        speed_value: 120,
        difference: -10,
      },
    ]);

    // One metric's series for one id over a day: an index range scan.
    const plan1 = await db.transaction(async (tx) => {
      await tx.query("SET LOCAL enable_seqscan = off");
      return await tx.query<{ "QUERY PLAN": string }>(
        `EXPLAIN SELECT timestamp, value FROM bytes_hourly
         WHERE type = 'antenna_bytes_total' AND id = 'ant-1'
           AND timestamp >= '2026-11-28' AND timestamp < '2026-11-29'`,
      );
    });
    const text = plan1.map((r) => r["QUERY PLAN"]).join("\n");
    assert.match(text, /bytes_hourly_type_id_ts_idx/, text);
  } finally {
    await db.close();
    await fresh.drop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("speed_partials: one id's day is a key range, every id's day a BRIN range", async () => {
  const fresh = await freshDatabase("serving_plan");
  const db = await openDb({ url: fresh.url, maxConnections: 1 });
  try {
    await migrate(db);
    const DAYS = 30;
    const end = H + 14 * 3_600_000; // a day boundary
    await db.query(
      `INSERT INTO speed_metrics (type, aggregation, window_ms)
       VALUES ('antenna_bytes_total', 'sum', $1)`,
      [W],
    );
    await db.query(
      `INSERT INTO speed_progress (topic, "partition", next_offset, lake_offset, clock_ms, watermark)
       VALUES ('devices', 0, 0, 0, $1, $2::timestamp)`,
      [end, new Date(end)],
    );
    // A month of windows of 50 ids, written window after window as the speed
    // layer writes them, so the heap is in time order.
    await db.query(
      `INSERT INTO speed_partials (type, "timestamp", id, "partition", value, window_end)
       SELECT 'antenna_bytes_total', ts, 'ant-' || i, 0, 1, ts + interval '5 minutes'
       FROM generate_series($1::timestamp, $2::timestamp - interval '5 minutes',
         interval '5 minutes') AS ts, generate_series(1, 50) AS i
       ORDER BY ts, i`,
      [new Date(end - DAYS * DAY), new Date(end)],
    );
    // VACUUM summarizes the BRIN ranges, as autovacuum does behind the layer.
    await db.exec("VACUUM ANALYZE speed_partials");
    await db.exec("ANALYZE");
    const explain = async (sql: string, params: unknown[] = []) =>
      (await db.query<{ "QUERY PLAN": string }>(`EXPLAIN ${sql}`, params))
        .map((r) => r["QUERY PLAN"]).join("\n");
    const day = ["antenna_bytes_total", new Date(end - 2 * DAY), new Date(end - DAY)];

    // The API's merged hourly series of one id: one range of the key
    // (type, id, timestamp), not every window of the id nor the table.
    const one = await explain(
      `${mergedHourlySql({ id: "$4", fold: "$5" })} ORDER BY timestamp`,
      [...day, "ant-7", "sum"],
    );
    assert.match(
      one,
      /Index (Only )?Scan using speed_partials_pkey on speed_partials p\s[^\n]*\n\s+Index Cond: \(\(type = [^\n]*id = [^\n]*"timestamp" >= [^\n]*"timestamp" < /,
      one,
    );
    assert.doesNotMatch(one, /Seq Scan on speed_partials/, one);
    // The API's live 5-minute series of one id: the same range of the key.
    const live = await explain(`${VIEW_DAY("serving_5m_live")} AND id = $4`, [...day, "ant-7"]);
    assert.match(live, /Index (Only )?Scan using speed_partials_pkey on speed_partials p\s/, live);
    assert.doesNotMatch(live, /Seq Scan on speed_partials/, live);

    // Every id's day, on the API's merged query and on the views (dashboards):
    // the BRIN index of sql/006 finds the day's pages, on the raw timestamp
    // and on serving_hourly's folded hour.
    const all = await explain(`${mergedHourlySql({ fold: "$4" })}`, [...day, "sum"]);
    for (
      const [name, text] of [
        ["API merged hourly", all],
        ["serving_5m", await explain(VIEW_DAY("serving_5m"), day)],
        ["serving_5m_live", await explain(VIEW_DAY("serving_5m_live"), day)],
        ["serving_hourly", await explain(VIEW_DAY("serving_hourly"), day)],
      ]
    ) {
      assert.match(text, /Bitmap Index Scan on speed_partials_time_brin/, `${name}:\n${text}`);
      assert.doesNotMatch(text, /Seq Scan on speed_partials/, `${name}:\n${text}`);
    }
  } finally {
    await db.close();
    await fresh.drop();
  }
});
