/**
 * The lambda architecture end to end, as a user meets it: simulated hours go
 * through Kafka, the speed layer, the lake and the batch layer into
 * PostgreSQL. The batch results are compared with totals computed here from
 * the generator's own events; re-running a batched hour with `deno task batch`
 * changes nothing; the serving view takes batch values where an hour is
 * batched and speed values elsewhere.
 */
import assert from "node:assert/strict";
import { main as batchMain } from "../../src/cli/batch.ts";
import { HOUR_MS } from "../../src/core/mod.ts";
import { openDb } from "../../src/db/mod.ts";
import { seedQuota } from "../../src/simulator/users.ts";
import { createGenerator, deviceId } from "../../src/simulator/mod.ts";
import { populateFromPipeline } from "../_support/pipeline_fixture.ts";
import { freshDatabase } from "../_support/services.ts";

const HOURS = 3;
const BATCHED = 2;
const RATE = 40; // events/s of event time: ~34 MB/h per device (~4.7 KB an event), above the 5 MB low quota

/** Independent totals: hour → type → id → bytes, and quota breaches per hour. */
function expected(firstHourMs: number) {
  const gen = createGenerator({
    seed: 42,
    startMs: firstHourMs,
    rate: RATE,
    lateShare: 0.02,
    maxLatenessMs: 60_000,
    malformedShare: 0.01,
  });
  const emailOf = new Map<string, string>();
  const quotaOf = new Map<string, number>();
  for (let i = 0; i < 20; i++) {
    emailOf.set(deviceId(i), `user${i + 1}@example.com`);
    quotaOf.set(`user${i + 1}@example.com`, seedQuota(i));
  }
  const totals = new Map<number, Map<string, Map<string, number>>>();
  const add = (hour: number, type: string, id: string, v: number) => {
    if (!totals.has(hour)) totals.set(hour, new Map());
    const t = totals.get(hour)!;
    if (!t.has(type)) t.set(type, new Map());
    t.get(type)!.set(id, (t.get(type)!.get(id) ?? 0) + v);
  };
  for (let i = 0; i < HOURS * 3600 * RATE; i++) {
    const e = gen.next().event;
    if (!e) continue;
    const hour = Math.floor((e.timestamp * 1000) / HOUR_MS) * HOUR_MS;
    add(hour, "antenna_bytes_total", e.antenna_id, e.bytes);
    add(hour, "email_bytes_total", emailOf.get(e.id)!, e.bytes);
    add(hour, "app_bytes_total", e.app, e.bytes);
  }
  const breaches = (hour: number) =>
    [...(totals.get(hour)?.get("email_bytes_total") ?? new Map<string, number>())]
      .filter(([email, usage]) => usage > quotaOf.get(email)!)
      .map(([email, usage]) => `${email}:${usage}:${quotaOf.get(email)}`)
      .sort();
  return { totals, breaches };
}

Deno.test({
  name: "simulated hours through speed, lake and batch give exact hourly totals and quota breaches",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const fresh = await freshDatabase("pipeline");
    let lakeDir = "";
    try {
      const run = await populateFromPipeline(fresh.url, {
        hours: HOURS,
        batchedHours: BATCHED,
        eventsPerSecond: RATE,
        keepLake: true,
      });
      lakeDir = run.lakeDir;
      const want = expected(run.firstHourMs);
      const db = await openDb({ url: fresh.url });
      try {
        const snapshot = async () => ({
          hourly: await db.query<{ timestamp: Date; id: string; value: number; type: string }>(
            `SELECT timestamp, id, value, type FROM bytes_hourly ORDER BY type, timestamp, id`,
          ),
          quota: await db.query<{ email: string; usage: number; quota: number; timestamp: Date }>(
            `SELECT email, usage, quota, timestamp FROM user_quota_limit ORDER BY timestamp, email`,
          ),
        });
        const before = await snapshot();

        for (let h = 0; h < BATCHED; h++) {
          const hour = run.firstHourMs + h * HOUR_MS;
          for (const type of ["antenna_bytes_total", "email_bytes_total", "app_bytes_total"]) {
            const got = new Map(
              before.hourly
                .filter((r) => r.type === type && r.timestamp.getTime() === hour)
                .map((r) => [r.id, r.value]),
            );
            assert.deepEqual(got, want.totals.get(hour)!.get(type), `${type} at hour ${h}`);
          }
          const breaches = before.quota
            .filter((r) => r.timestamp.getTime() === hour)
            .map((r) => `${r.email}:${r.usage}:${r.quota}`)
            .sort();
          assert.ok(breaches.length > 0, "the low quotas are exceeded");
          assert.deepEqual(breaches, want.breaches(hour), `breaches at hour ${h}`);
        }
        const unbatched = before.hourly.filter((r) =>
          r.timestamp.getTime() >= run.firstHourMs + BATCHED * HOUR_MS
        );
        assert.equal(unbatched.length, 0, "hours not batched yet have no batch rows");

        // The serving view: batch where batched, speed for the rest.
        const sources = await db.query<{ timestamp: Date; source: string }>(
          `SELECT DISTINCT timestamp, source FROM serving_hourly
            WHERE type = 'antenna_bytes_total' AND timestamp >= $1 ORDER BY timestamp`,
          [new Date(run.firstHourMs)],
        );
        assert.deepEqual(
          sources.map((r) => [r.timestamp.getTime(), r.source]),
          Array.from({ length: HOURS }, (_, h) => [
            run.firstHourMs + h * HOUR_MS,
            h < BATCHED ? "batch" : "speed",
          ]),
        );

        // The speed layer's windows of a batched hour never exceed the exact
        // total; the difference is what it dropped as too late.
        const rec = await db.query<{ batch_value: number; speed_value: number }>(
          `SELECT batch_value, speed_value FROM batch_reconciliation
            WHERE metric = 'antenna_bytes_total' AND hour = $1`,
          [new Date(run.firstHourMs)],
        );
        assert.equal(rec.length, 1);
        const exact = [...want.totals.get(run.firstHourMs)!.get("antenna_bytes_total")!.values()]
          .reduce((a, b) => a + b, 0);
        assert.equal(rec[0].batch_value, exact);
        assert.ok(rec[0].speed_value <= exact && rec[0].speed_value > exact * 0.9);

        // `deno task batch --hour` for a batched hour changes nothing.
        const config = `${lakeDir}/pipeline.yaml`;
        await Deno.writeTextFile(config, run.configYaml);
        const hourArg = new Date(run.firstHourMs).toISOString().slice(0, 13);
        assert.equal(await batchMain(["--hour", hourArg, "--config", config]), 0);
        assert.deepEqual(await snapshot(), before);
      } finally {
        await db.close();
      }
    } finally {
      if (lakeDir) await Deno.remove(lakeDir, { recursive: true }).catch(() => {});
      await fresh.drop();
    }
  },
});
