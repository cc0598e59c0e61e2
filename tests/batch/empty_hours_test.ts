/**
 * Hours before any data, and backfill re-runs that failed, on real
 * PostgreSQL and a local lake, driven as the speed layer leaves the database
 * (its completeness and the hours it stamped in the lake): a run of an hour
 * days before the first data is an empty success that names the first hour
 * with data and writes no batch hour, so `lastCompletedHour` does not move
 * and `/api/v1/hours` shows such hours as empty; an hour of an older lake
 * with files still runs. A batch re-run that a backfill started and that
 * failed leaves the hour stale, and the scheduler runs it again.
 */
import assert from "node:assert/strict";
import { createBatchRunner, type HourReader } from "../../src/batch/mod.ts";
import { createBackfillWorker } from "../../src/backfill/mod.ts";
import * as backfillStore from "../../src/backfill/store.ts";
import { migrate, openDb, type Queryable } from "../../src/db/mod.ts";
import { type ObjectStore, openStore, readHour } from "../../src/lake/mod.ts";
import { createLogger } from "../../src/log.ts";
import type { Plan } from "../../src/config/plan.ts";
import { deviceId } from "../../src/simulator/mod.ts";
import { freshDatabase } from "../_support/services.ts";
import { generateHour, insertUsers, testPlan, writeLakeHour } from "../_support/batch.ts";

const HOUR = 3_600_000;
// The speed layer's first data: the current hour three hours ago.
const H0 = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
const quiet = createLogger({ test: "batch_empty_hours" });
const USERS = Array.from({ length: 10 }, (_, i) => ({
  id: deviceId(i),
  name: `U${i}`,
  email: `u${i}@x`,
  quota: 1e12,
}));
const label = (ms: number) => new Date(ms).toISOString().slice(0, 13);

async function lakeHour(store: ObjectStore, hour: number, seed: number): Promise<void> {
  const cols = generateHour({
    hour,
    events: 200,
    devices: USERS.map((u) => u.id),
    antennas: 3,
    apps: ["A", "B"],
    seed,
  });
  await writeLakeHour(store, hour, cols, 1);
}

/**
 * What a speed layer that has written the lake from H0 to now records: one
 * partition, complete through now, its lake rows stamped in H0 … H0 + 2 h.
 */
async function speedLayerRecords(db: Queryable, plan: Plan): Promise<void> {
  const topic = plan.source.kafka.topic;
  const now = Date.now();
  await db.query("INSERT INTO speed_topics (topic, partitions) VALUES ($1, 1)", [topic]);
  await db.query(
    `INSERT INTO speed_progress (topic, "partition", next_offset, lake_offset, clock_ms,
       lake_clock_ms, caught_up_ms) VALUES ($1, 0, 600, 600, $2, $2, $2)`,
    [topic, now],
  );
  for (const [i, h] of [H0, H0 + HOUR, H0 + 2 * HOUR].entries()) {
    await db.query(
      `INSERT INTO lake_hour_changes (hour, topic, "partition", seq, changed_at)
       VALUES ($1::timestamp, $2, 0, $3, now())`,
      [new Date(h), topic, i + 1],
    );
  }
}

async function scene(prefix: string) {
  const fresh = await freshDatabase(prefix);
  const db = await openDb({ url: fresh.url, maxConnections: 2 });
  const dir = await Deno.makeTempDir({ prefix: `${prefix}_lake_` });
  const plan = testPlan({ lakeUri: `file://${dir}` });
  const store = openStore(plan.lake);
  await migrate(db);
  await insertUsers(db, USERS);
  await speedLayerRecords(db, plan);
  await lakeHour(store, H0, 1);
  return {
    db,
    plan,
    store,
    async close() {
      await db.close();
      await fresh.drop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("a run of an hour before any data is an empty success: no batch hour, lastCompletedHour unmoved, /hours says empty", async () => {
  const s = await scene("emptyhours");
  try {
    const runner = createBatchRunner({ plan: s.plan, db: s.db, store: s.store, log: quiet });
    assert.equal((await runner.runHour(H0, "manual")).status, "succeeded");
    assert.equal(await runner.lastCompletedHour(), H0);
    const daysBefore = H0 - 72 * HOUR;
    const empty = await runner.runHour(daysBefore, "manual");
    assert.equal(empty.status, "succeeded");
    assert.equal(
      empty.note,
      `empty: the hour is before any data this pipeline has seen (the first hour with data is ${
        label(H0)
      }): nothing to batch`,
    );
    assert.equal(empty.rowsWritten, 0);
    // The API's path (POST /api/v1/batch/runs submits): the same, queued.
    const { runIds } = await runner.submit([daysBefore + HOUR], "api");
    await runner.idle();
    const queued = await runner.getRun(runIds[0]);
    assert.equal(queued?.status, "succeeded");
    assert.match(queued?.note ?? "", /^empty: /);
    assert.equal(await runner.lastCompletedHour(), H0);
    const batched = await s.db.query<{ hour: Date }>("SELECT hour FROM batch_hours ORDER BY hour");
    assert.deepEqual(batched.map((r) => r.hour.getTime()), [H0]);

    const report = await runner.hours(H0 - 2 * HOUR, H0 + HOUR);
    assert.equal(report.rule, "completeness");
    assert.deepEqual(report.hours.map((h) => [label(h.hour), h.state]), [
      [label(H0 - 2 * HOUR), "empty"],
      [label(H0 - HOUR), "empty"],
      [label(H0), "batched"],
      [label(H0 + HOUR), "complete"],
    ]);

    // A lake older than the speed layer's records: the hour holds files, so it runs,
    // and the hours from it on are no longer empty.
    const older = H0 - 2 * HOUR;
    await lakeHour(s.store, older, 2);
    const ran = await runner.runHour(older, "manual");
    assert.equal(ran.status, "succeeded");
    assert.equal(ran.rowsRead, 200);
    assert.equal(ran.note, undefined);
    const after = await runner.hours(H0 - 3 * HOUR, H0 - HOUR);
    assert.deepEqual(after.hours.map((h) => h.state), ["empty", "batched", "complete"]);
  } finally {
    await s.close();
  }
});

Deno.test("a batch re-run a backfill started that failed stays stale until the scheduler runs it again", async () => {
  const s = await scene("bfretry");
  try {
    const topic = s.plan.source.kafka.topic;
    const runner = createBatchRunner({ plan: s.plan, db: s.db, store: s.store, log: quiet });
    assert.equal((await runner.runHour(H0, "schedule")).status, "succeeded");
    // The backfill's runner reads a lake that fails (e.g. GCS down for the run).
    const failing: HourReader = () => Promise.reject(new Error("lake unreachable"));
    const backfillRunner = createBatchRunner({
      plan: s.plan,
      db: s.db,
      store: s.store,
      log: quiet,
      readHour: failing,
    });
    const worker = createBackfillWorker({
      db: s.db,
      store: s.store,
      topic,
      plan: () => s.plan,
      log: quiet,
      runHour: (h) => backfillRunner.runHour(h, "backfill"),
    });
    await backfillStore.queueHours(s.db, topic, [H0], ["email_bytes_total"]);
    assert.equal(await worker.drain({ batch: true }), "done");
    assert.deepEqual((await worker.status()).batchHours, { queued: 0, finished: 1, failed: 1 });
    assert.equal((await runner.hours(H0, H0)).hours[0].state, "stale");
    assert.equal((await runner.hoursSummary()).staleHours, 1);

    // The scheduler, once batch.rerun_after has passed: the hour runs again, and succeeds.
    const later = createBatchRunner({
      plan: s.plan,
      db: s.db,
      store: s.store,
      log: quiet,
      readHour,
      clock: () => Date.now() + s.plan.batch.rerunAfterMs + 60_000,
    });
    const runs = await later.runDue();
    assert.deepEqual(runs.map((r) => [label(r.hour), r.trigger, r.status]), [
      [label(H0), "rerun", "succeeded"],
    ]);
    assert.equal((await runner.hours(H0, H0)).hours[0].state, "batched");
    assert.deepEqual((await worker.status()).batchHours, { queued: 0, finished: 1, failed: 0 });
    assert.deepEqual(await later.runDue(), []);
  } finally {
    await s.close();
  }
});
