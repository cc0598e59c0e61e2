/**
 * Running hours: two concurrent runs of one hour (PostgreSQL and embedded
 * PGlite), a backfill range through submit() and through the CLI, and the
 * scheduler's catch-up driven by an injected clock.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import { freshDatabase } from "../_support/services.ts";
import { type Db, migrate, openDb } from "../../src/db/mod.ts";
import { type ObjectStore, openStore, readHour, StoreError } from "../../src/lake/mod.ts";
import { createBatchRunner, HourBusyError, type HourReader } from "../../src/batch/mod.ts";
import { main as batchCli } from "../../src/cli/batch.ts";
import { generateHour, insertUsers, testPlan, writeLakeHour } from "../_support/batch.ts";
import { deviceId } from "../../src/simulator/mod.ts";
import { createLogger } from "../../src/log.ts";

const HOUR = 3_600_000;
const H0 = Date.UTC(2026, 10, 28, 0);
const quiet = createLogger({ test: "batch_runs" });
const USERS = Array.from({ length: 10 }, (_, i) => ({
  id: deviceId(i),
  name: `U${i}`,
  email: `u${i}@x`,
  quota: 1e12,
}));

async function lakeWithHours(hours: number[]): Promise<{ dir: string; store: ObjectStore }> {
  const dir = await Deno.makeTempDir({ prefix: "batch_runs_lake_" });
  const store = openStore(testPlan({ lakeUri: `file://${dir}` }).lake);
  for (const [i, h] of hours.entries()) {
    const cols = generateHour({
      hour: h,
      events: 200,
      devices: USERS.map((u) => u.id),
      antennas: 3,
      apps: ["A", "B"],
      seed: i + 1,
    });
    await writeLakeHour(store, h, cols, 1);
  }
  return { dir, store };
}

/** A reader that holds the hour for a while, so a second run surely overlaps. */
const slowReader = (ms: number): HourReader => async (store, h, cols) => {
  await delay(ms);
  return await readHour(store, h, cols);
};

async function countHourly(db: Db, h: number): Promise<number> {
  return (await db.query<{ n: number }>(
    "SELECT count(*)::bigint AS n FROM bytes_hourly WHERE timestamp = $1::timestamp",
    [new Date(h)],
  ))[0].n;
}

async function concurrentRuns(dbA: Db, dbB: Db) {
  const { dir, store } = await lakeWithHours([H0]);
  try {
    const plan = testPlan({ lakeUri: `file://${dir}` });
    // Two runners = two processes: separate queues, one database.
    const a = createBatchRunner({ plan, db: dbA, store, log: quiet, readHour: slowReader(400) });
    const b = createBatchRunner({ plan, db: dbB, store, log: quiet });
    const first = a.runHour(H0, "manual");
    await delay(150); // a holds the hour now
    await assert.rejects(() => b.runHour(H0, "api"), (err: unknown) => {
      assert.ok(err instanceof HourBusyError);
      assert.equal(err.status, 409);
      assert.match(err.message, /^hour 2026-11-28T00 is already running \(run \d+\)/);
      return true;
    });
    await assert.rejects(() => b.submit([H0], "api"), HourBusyError);
    const s = await first;
    assert.equal(s.status, "succeeded", s.error ?? "");
    const runs = await a.listRuns({ hour: H0 });
    assert.deepEqual(runs.map((r) => r.status).sort(), ["conflict", "succeeded"]);
    assert.match(runs.find((r) => r.status === "conflict")!.error!, /already running/);
    const rows = await countHourly(dbA, H0);
    assert.equal(rows, s.rowsWritten);
    // Once it has finished, the hour can run again: same rows.
    assert.equal((await b.runHour(H0, "manual")).status, "succeeded");
    assert.equal(await countHourly(dbA, H0), rows);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("runHour() refuses a second concurrent run of one hour (PostgreSQL, two pools)", async () => {
  const fresh = await freshDatabase("batchrun");
  const dbA = await openDb({ url: fresh.url, maxConnections: 2 });
  const dbB = await openDb({ url: fresh.url, maxConnections: 2 });
  try {
    await migrate(dbA);
    await insertUsers(dbA, USERS);
    await concurrentRuns(dbA, dbB);
  } finally {
    await dbA.close();
    await dbB.close();
    await fresh.drop();
  }
});

Deno.test("runHour() refuses a second concurrent run of one hour (embedded PGlite)", async () => {
  const db = await openDb({});
  try {
    await migrate(db);
    await insertUsers(db, USERS);
    await concurrentRuns(db, db);
  } finally {
    await db.close();
  }
});

Deno.test("submit() returns at once and runs a backfill range oldest first, once each", async () => {
  const fresh = await freshDatabase("batchsub");
  const db = await openDb({ url: fresh.url, maxConnections: 2 });
  const hours = [H0, H0 + HOUR, H0 + 2 * HOUR];
  const { dir, store } = await lakeWithHours(hours);
  try {
    await migrate(db);
    await insertUsers(db, USERS);
    const r = createBatchRunner({
      plan: testPlan({ lakeUri: `file://${dir}` }),
      db,
      store,
      log: quiet,
    });
    const { runIds } = await r.submit([hours[2], hours[0], hours[1]], "backfill");
    assert.equal(runIds.length, 3);
    const queued = await r.getRun(runIds[2]);
    assert.ok(queued && ["queued", "running"].includes(queued.status));
    await assert.rejects(() => r.submit([hours[1]], "api"), HourBusyError); // already queued
    await r.idle();
    const done = await Promise.all(runIds.map((id) => r.getRun(id)));
    assert.deepEqual(done.map((x) => x?.status), ["succeeded", "succeeded", "succeeded"]);
    assert.deepEqual(done.map((x) => x?.hour), hours);
    assert.ok(done[0]!.finishedAt! <= done[1]!.startedAt!);
    assert.equal(await r.lastCompletedHour(), hours[2]);
    assert.equal(await r.getRun("nope"), undefined);
  } finally {
    await db.close();
    await fresh.drop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the scheduler catches up missed hours oldest first, once each, by the injected clock", async () => {
  const fresh = await freshDatabase("batchsched");
  const db = await openDb({ url: fresh.url, maxConnections: 2 });
  // Lake data for 5 hours; catch-up reaches back 3, so the oldest is left alone.
  const hours = [0, 1, 2, 3, 4].map((i) => H0 + i * HOUR);
  const { dir, store } = await lakeWithHours(hours);
  try {
    await migrate(db);
    await insertUsers(db, USERS);
    // The lake is written by hand, not by a speed layer: the wall clock decides.
    const plan = testPlan({
      lakeUri: `file://${dir}`,
      graceMinutes: 10,
      catchUpHours: 3,
      speedEnabled: false,
    });
    let now = H0 + 5 * HOUR + 9 * 60_000; // 05:09: hour 04 is still in its grace
    const r = createBatchRunner({ plan, db, store, log: quiet, clock: () => now });
    const first = await r.runDue();
    assert.deepEqual(first.map((s) => s.hour), [hours[1], hours[2], hours[3]]);
    assert.ok(first.every((s) => s.status === "succeeded" && s.trigger === "schedule"));
    assert.deepEqual(await r.runDue(), []); // nothing twice
    now += 60_000; // 05:10: hour 04 is due
    assert.deepEqual((await r.runDue()).map((s) => s.hour), [hours[4]]);
    now += 10 * HOUR; // downtime; hours 05..14 have no lake data and no speed data
    assert.deepEqual(await r.runDue(), []);
    // Speed windows from 13:05 on (the older one written last): hours 13 and
    // 14 are due without lake files, so a lost lake hour is still run and
    // reported; hour 12 is before the speed layer's first window.
    await db.query(
      `INSERT INTO speed_partials (type, "timestamp", id, "partition", value, window_end)
       VALUES ('antenna_bytes_total', $1::timestamp, 'a', 0, 1, $1::timestamp + interval '5 minutes'),
         ('antenna_bytes_total', $2::timestamp, 'a', 0, 1, $2::timestamp + interval '5 minutes')`,
      [new Date(H0 + 14.5 * HOUR), new Date(H0 + 13 * HOUR + 5 * 60_000)],
    );
    assert.deepEqual((await r.runDue()).map((s) => s.hour), [H0 + 13 * HOUR, H0 + 14 * HOUR]);
    const runs = await r.listRuns();
    assert.equal(runs.length, 6);
    // startScheduler() ticks and stops cleanly.
    const s = r.startScheduler();
    await s.stop();
  } finally {
    await db.close();
    await fresh.drop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("batch CLI: a backfill range prints one line per hour; bad arguments exit 2", async () => {
  const fresh = await freshDatabase("batchcli");
  const hours = [H0, H0 + HOUR];
  const { dir, store } = await lakeWithHours(hours);
  void store;
  const config = await Deno.makeTempFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(
      config,
      `lake:\n  uri: file://${dir}\ndatabase:\n  url: ${fresh.url}\n`,
    );
    assert.equal(await batchCli(["--hour", "2026-11-28T25"]), 2);
    assert.equal(await batchCli(["--from", "2026-11-28T05", "--to", "2026-11-28T01"]), 2);
    assert.equal(await batchCli(["--bogus"]), 2);
    // An hour that has not ended is refused: it would hide its speed windows.
    const thisHour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000);
    assert.equal(await batchCli(["--hour", thisHour.toISOString().slice(0, 13)]), 2);
    const lines: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => lines.push(a.join(" "));
    let code;
    try {
      code = await batchCli([
        "--from",
        "2026-11-28T00",
        "--to",
        "2026-11-28T01",
        "--config",
        config,
      ]);
    } finally {
      console.log = log;
    }
    assert.equal(code, 0, lines.join("\n"));
    assert.match(
      lines[0],
      /^2026-11-28T00 succeeded rows_read=200 files=3 rows_written=\d+ breaches=0/,
    );
    assert.match(lines[1], /^2026-11-28T01 succeeded /);
    assert.equal(lines[2], "2 of 2 hours succeeded");
  } finally {
    await fresh.drop();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(config);
  }
});

Deno.test("runHour() reads the hour again when a file vanishes under the read (a compaction), and succeeds", async () => {
  const fresh = await freshDatabase("batch_vanish");
  const db = await openDb({ url: fresh.url, maxConnections: 2 });
  const { dir, store } = await lakeWithHours([H0]);
  try {
    await migrate(db);
    await insertUsers(db, USERS);
    let reads = 0;
    const vanishing: HourReader = async (s, h, cols, opts) => {
      if (++reads === 1) {
        throw new StoreError("read", "year=2026/part-x.parquet", "not_found", "no such object");
      }
      return await readHour(s, h, cols, opts);
    };
    const plan = testPlan({ lakeUri: `file://${dir}` });
    const r = createBatchRunner({ plan, db, store, log: quiet, readHour: vanishing });
    const s = await r.runHour(H0, "manual");
    assert.equal(s.status, "succeeded", s.error ?? "");
    assert.equal(s.rowsRead, 200);
    assert.equal(reads, 2);
  } finally {
    await db.close();
    await fresh.drop();
    await Deno.remove(dir, { recursive: true });
  }
});
