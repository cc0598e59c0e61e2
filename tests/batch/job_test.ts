/**
 * The batch job for one hour against real PostgreSQL and a local lake:
 * exact totals against a plain computation in the test, idempotence, the
 * quota boundary, devices without metadata under each policy, bad lake data.
 */
import assert from "node:assert/strict";
import { freshDatabase } from "../_support/services.ts";
import { type Db, migrate, openDb } from "../../src/db/mod.ts";
import { type ObjectStore, openStore } from "../../src/lake/mod.ts";
import type { EventColumns } from "../../src/lake/mod.ts";
import { createBatchRunner, HourBusyError } from "../../src/batch/mod.ts";
import {
  generateHour,
  hourlyRows,
  insertUsers,
  testPlan,
  type TestPlanOptions,
  type TestUser,
  writeLakeHour,
} from "../_support/batch.ts";
import { deviceId } from "../../src/simulator/mod.ts";
import type { UnknownDevicePolicy } from "../../src/config/plan.ts";
import { createLogger } from "../../src/log.ts";

const H = Date.UTC(2026, 10, 28, 10);
const APPS = ["SKYPE", "FACEBOOK", "WHATSAPP", "TELEGRAM"];
const quiet = createLogger({ test: "batch_job" });

interface Env {
  db: Db;
  store: ObjectStore;
  lakeDir: string;
  done(): Promise<void>;
}

async function setup(): Promise<Env> {
  const fresh = await freshDatabase("batch");
  const db = await openDb({ url: fresh.url, maxConnections: 3 });
  await migrate(db);
  const lakeDir = await Deno.makeTempDir({ prefix: "batch_lake_" });
  const store = openStore(testPlan({ lakeUri: `file://${lakeDir}` }).lake);
  return {
    db,
    store,
    lakeDir,
    async done() {
      await db.close();
      await fresh.drop();
      await Deno.remove(lakeDir, { recursive: true });
    },
  };
}

function runner(env: Env, o: Partial<TestPlanOptions> = {}) {
  const plan = testPlan({ lakeUri: `file://${env.lakeDir}`, ...o });
  return createBatchRunner({
    plan,
    db: env.db,
    store: env.store,
    log: quiet,
    clock: () => H + 2 * 3_600_000,
  });
}

/** The reference: plain loops, no core code. */
function reference(c: EventColumns, users: Map<string, TestUser>, policy: UnknownDevicePolicy) {
  const out = new Map<string, Map<string, number>>([
    ["antenna_bytes_total", new Map()],
    ["email_bytes_total", new Map()],
    ["app_bytes_total", new Map()],
  ]);
  const add = (m: string, k: string, v: number) =>
    out.get(m)!.set(k, (out.get(m)!.get(k) ?? 0) + v);
  const usage = new Map<string, number>();
  for (let i = 0; i < c.id.length; i++) {
    const u = users.get(c.id[i]);
    if (!u && policy === "drop") continue;
    const email = u ? u.email : "unknown";
    add("antenna_bytes_total", c.antenna_id[i], c.bytes[i]);
    add("email_bytes_total", email, c.bytes[i]);
    add("app_bytes_total", c.app[i], c.bytes[i]);
    if (u) usage.set(email, (usage.get(email) ?? 0) + c.bytes[i]);
  }
  const quota = new Map<string, number>();
  for (const u of users.values()) quota.set(u.email, Math.max(quota.get(u.email) ?? 0, u.quota));
  const breaches = [...usage].filter(([e, v]) => v > quota.get(e)!).map(([e]) => e).sort();
  return { out, breaches };
}

function makeUsers(n: number, quota: (i: number) => number): TestUser[] {
  // Two devices per email: quotas are per user, usage sums over devices.
  return Array.from({ length: n }, (_, i) => ({
    id: deviceId(i),
    name: `User ${i >> 1}`,
    email: `user${i >> 1}@example.com`,
    quota: quota(i),
  }));
}

Deno.test("runHour() computes exact totals and breaches, and a rerun changes nothing", async () => {
  const env = await setup();
  try {
    const users = makeUsers(40, (i) => (i % 4 === 0 ? 200_000 : 10_000_000));
    await insertUsers(env.db, users);
    const devices = [...users.map((u) => u.id), deviceId(900), deviceId(901)]; // 2 unknown
    const cols = generateHour({ hour: H, events: 5000, devices, antennas: 5, apps: APPS });
    await writeLakeHour(env.store, H, cols, 2);
    const ref = reference(cols, new Map(users.map((u) => [u.id, u])), "unknown_id");

    const r = runner(env);
    const s1 = await r.runHour(H, "manual");
    assert.equal(s1.status, "succeeded", s1.error ?? "");
    assert.equal(s1.rowsRead, 5000);
    assert.equal(s1.filesRead, 6);
    assert.equal(s1.unknownDevices, 2);
    assert.deepEqual(await hourlyRows(env.db, H), ref.out);
    const breaches = await env.db.query<{ email: string }>(
      "SELECT email FROM user_quota_limit WHERE timestamp = $1::timestamp ORDER BY email",
      [new Date(H)],
    );
    assert.ok(ref.breaches.length > 0);
    assert.deepEqual(breaches.map((b) => b.email), ref.breaches);
    assert.equal(s1.breaches, ref.breaches.length);

    // Reconciliation: no speed windows yet, so the difference is the batch total.
    const rec = await env.db.query<{ metric: string; speed_metric: string; difference: number }>(
      "SELECT metric, speed_metric, difference FROM batch_reconciliation ORDER BY metric",
    );
    const total = [...ref.out.get("app_bytes_total")!.values()].reduce((a, b) => a + b, 0);
    assert.deepEqual(rec.map((x) => [x.metric, x.speed_metric]), [
      ["antenna_bytes_total", "antenna_bytes_total"],
      ["app_bytes_total", "app_bytes_total"],
      ["email_bytes_total", "user_bytes_total"],
    ]);
    assert.ok(rec.every((x) => x.difference === total));

    const count = async () =>
      (await env.db.query<{ n: number }>("SELECT count(*)::bigint AS n FROM bytes_hourly"))[0].n;
    const before = await count();
    const s2 = await r.runHour(H, "manual");
    assert.equal(s2.status, "succeeded");
    assert.equal(await count(), before);
    assert.deepEqual(await hourlyRows(env.db, H), ref.out);
    assert.equal(s2.rowsWritten, s1.rowsWritten);

    const runs = await r.listRuns({ hour: H });
    assert.deepEqual(runs.map((x) => x.status), ["succeeded", "succeeded"]);
    assert.equal(runs[0].filesRead, 6);
    assert.equal(await r.lastCompletedHour(), H);
  } finally {
    await env.done();
  }
});

Deno.test("runHour() treats usage equal to the quota as no breach, one byte more as a breach", async () => {
  const env = await setup();
  try {
    const users: TestUser[] = [
      { id: deviceId(1), name: "A", email: "a@x", quota: 1000 },
      { id: deviceId(2), name: "B", email: "b@x", quota: 1000 },
      { id: deviceId(3), name: "B", email: "b@x", quota: 1000 }, // b@x has two devices
    ];
    await insertUsers(env.db, users);
    const cols = generateHour({
      hour: H,
      events: 4,
      devices: [deviceId(1)],
      antennas: 1,
      apps: APPS,
    });
    cols.id = [deviceId(1), deviceId(1), deviceId(2), deviceId(3)];
    cols.bytes.set([400, 600, 500, 501]); // a: 1000 == quota; b: 1001 > quota
    await writeLakeHour(env.store, H, cols, 1);
    const s = await runner(env).runHour(H, "manual");
    assert.equal(s.status, "succeeded", s.error ?? "");
    const rows = await env.db.query("SELECT email, usage, quota FROM user_quota_limit");
    assert.deepEqual(rows, [{ email: "b@x", usage: 1001, quota: 1000 }]);
  } finally {
    await env.done();
  }
});

Deno.test("runHour() handles devices without metadata by policy, never silently", async (t) => {
  const env = await setup();
  try {
    const users = makeUsers(6, () => 1e12);
    await insertUsers(env.db, users);
    const devices = [...users.map((u) => u.id), deviceId(77)];
    const cols = generateHour({ hour: H, events: 700, devices, antennas: 2, apps: APPS });
    await writeLakeHour(env.store, H, cols, 1);
    const unknownRows = cols.id.filter((id) => id === deviceId(77)).length;
    const byId = new Map(users.map((u) => [u.id, u]));
    for (const policy of ["unknown_id", "drop"] as const) {
      await t.step(policy, async () => {
        const s = await runner(env, { policy }).runHour(H, "manual");
        assert.equal(s.status, "succeeded", s.error ?? "");
        assert.equal(s.unknownDevices, 1);
        assert.equal(s.unknownRows, unknownRows);
        assert.deepEqual(await hourlyRows(env.db, H), reference(cols, byId, policy).out);
        const run = await runner(env).getRun(s.runId);
        assert.equal(run?.unknownDevices, 1);
        if (policy === "drop") assert.match(run?.note ?? "", /dropped/);
        // The speed layer counts the unknown device's bytes, the batch (drop) does
        // not: the reconciliation explains that part of the difference.
        const unknownBytes = cols.id.reduce(
          (sum, id, i) => (id === deviceId(77) ? sum + cols.bytes[i] : sum),
          0,
        );
        const rec = await env.db.query<
          { difference: number; unknown_dropped: number; unexplained: number }
        >("SELECT difference, unknown_dropped, unexplained FROM batch_reconciliation");
        assert.equal(rec.length, 3);
        for (const r of rec) {
          assert.equal(Number(r.unknown_dropped), policy === "drop" ? unknownBytes : 0);
          assert.equal(
            Number(r.unexplained),
            Number(r.difference) + Number(r.unknown_dropped),
          );
        }
      });
    }
    await t.step("fail", async () => {
      const before = await hourlyRows(env.db, H);
      const s = await runner(env, { policy: "fail" }).runHour(H, "manual");
      assert.equal(s.status, "failed");
      assert.match(s.error!, new RegExp(`1 devices have no user metadata.*${deviceId(77)}`));
      assert.deepEqual(await hourlyRows(env.db, H), before); // the previous result stands
      // The failed run still records what it read: what the last successful run read.
      const read = (where: string, p: unknown) =>
        env.db.query<{ rows_read: number; files_read: number }>(
          `SELECT rows_read, files_read FROM batch_runs WHERE ${where} ORDER BY run_id DESC LIMIT 1`,
          [p],
        );
      const [ok] = await read("hour = $1::timestamp AND status = 'succeeded'", new Date(H));
      const [failed] = await read("run_id = $1", s.runId);
      assert.ok(Number(ok.rows_read) > 0);
      assert.deepEqual([s.rowsRead, s.filesRead], [Number(ok.rows_read), Number(ok.files_read)]);
      assert.deepEqual([Number(failed.rows_read), Number(failed.files_read)], [
        s.rowsRead,
        s.filesRead,
      ]);
    });
  } finally {
    await env.done();
  }
});

/** 300 events of two known devices in hour H, `filesPerPartition` files each; their keys. */
async function smallHour(env: Env, filesPerPartition: number): Promise<string[]> {
  await insertUsers(env.db, makeUsers(4, () => 1e12));
  const cols = generateHour({
    hour: H,
    events: 300,
    devices: [deviceId(0), deviceId(1)],
    antennas: 2,
    apps: APPS,
  });
  return await writeLakeHour(env.store, H, cols, filesPerPartition);
}

Deno.test("runHour() fails an hour with a corrupt file, naming it, and writes nothing", async () => {
  const env = await setup();
  try {
    const keys = await smallHour(env, 1);
    const bad = keys[1];
    const bytes = await env.store.get(bad);
    await env.store.put(bad, bytes.subarray(0, Math.floor(bytes.length / 2))); // truncated
    const r = runner(env);
    const s = await r.runHour(H, "manual");
    assert.equal(s.status, "failed");
    assert.ok(s.error!.includes(bad), s.error ?? "");
    assert.equal((await hourlyRows(env.db, H)).size, 0);
    const run = await r.getRun(s.runId);
    assert.equal(run?.status, "failed");
    assert.ok(run?.error?.includes(bad));
    assert.equal(await r.lastCompletedHour(), undefined);
  } finally {
    await env.done();
  }
});

Deno.test("runHour() fails an hour with more lake rows than batch.process_max_rows before decoding any, and writes nothing", async () => {
  const env = await setup();
  try {
    const keys = await smallHour(env, 2);
    const atLimit = await runner(env, { processMaxRows: 300 }).runHour(H, "manual");
    assert.equal(atLimit.status, "succeeded", atLimit.error ?? "");
    assert.equal(atLimit.rowsRead, 300);
    const before = await hourlyRows(env.db, H);
    // A file whose data pages are garbage and whose footer is intact: a limit checked after
    // decoding would fail on it instead.
    const bytes = await env.store.get(keys[0]);
    bytes.fill(7, 4, Math.floor(bytes.length / 2));
    await env.store.put(keys[0], bytes);
    const r = runner(env, { processMaxRows: 299 });
    const s = await r.runHour(H, "manual");
    assert.equal(s.status, "failed");
    assert.equal(
      s.error,
      "the hour holds 300 lake rows, more than the in-process engine reads (batch.process_max_rows: 299): run hours this large on Spark (batch.engine: spark, docs/scaling.md), or raise batch.process_max_rows",
    );
    // The files were listed; their rows were never read.
    assert.deepEqual([s.filesRead, s.rowsRead], [keys.length, 0]);
    assert.deepEqual(await hourlyRows(env.db, H), before);
    assert.equal((await r.getRun(s.runId))?.error, s.error);
  } finally {
    await env.done();
  }
});

Deno.test("runHour() succeeds with zero rows on an empty hour and reports the missing partition", async () => {
  const env = await setup();
  try {
    const r = runner(env);
    const s = await r.runHour(H, "manual");
    assert.equal(s.status, "succeeded");
    assert.equal(s.rowsRead, 0);
    assert.equal(s.rowsWritten, 0);
    assert.match(s.note ?? "", /missing/);
    assert.equal((await r.getRun(s.runId))?.note, s.note);
    assert.equal(await r.lastCompletedHour(), H);
    await assert.rejects(() => r.runHour(H + 1, "manual"), /not the start of a UTC hour/);
    assert.ok(HourBusyError); // exported for the API
  } finally {
    await env.done();
  }
});
