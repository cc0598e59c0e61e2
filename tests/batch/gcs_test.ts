/**
 * The batch job over a `gs://` lake on the GCS emulator: same totals as the
 * lake holds, and a corrupt object fails the hour naming it.
 */
import assert from "node:assert/strict";
import { freshDatabase, gcsEndpoint, uniqueName } from "../_support/services.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import { createBatchRunner } from "../../src/batch/mod.ts";
import { generateHour, insertUsers, testPlan, writeLakeHour } from "../_support/batch.ts";
import { deviceId } from "../../src/simulator/mod.ts";
import { createLogger } from "../../src/log.ts";

const H = Date.UTC(2026, 10, 28, 7);

Deno.test("runHour() reads an hour from a gs:// lake on the emulator", async () => {
  const fresh = await freshDatabase("batchgcs");
  const db = await openDb({ url: fresh.url, maxConnections: 2 });
  try {
    await migrate(db);
    const users = Array.from({ length: 8 }, (_, i) => ({
      id: deviceId(i),
      name: `U${i}`,
      email: `u${i % 4}@x`,
      quota: 1_000,
    }));
    await insertUsers(db, users);
    const bucket = uniqueName("batch").replaceAll("_", "-");
    const plan = testPlan({ lakeUri: `gs://${bucket}/raw`, gcsEndpoint: gcsEndpoint() });
    const store = openStore(plan.lake);
    const cols = generateHour({
      hour: H,
      events: 400,
      devices: users.map((u) => u.id),
      antennas: 3,
      apps: ["A", "B", "C"],
    });
    const keys = await writeLakeHour(store, H, cols, 2);
    const runner = createBatchRunner({ plan, db, store, log: createLogger({ test: "gcs" }) });
    const s = await runner.runHour(H, "manual");
    assert.equal(s.status, "succeeded", s.error ?? "");
    assert.equal(s.rowsRead, 400);
    assert.equal(s.filesRead, keys.length);
    const total = cols.bytes.reduce((a, b) => a + b, 0);
    const rows = await db.query<{ type: string; total: number }>(
      `SELECT type, sum(value)::bigint AS total FROM bytes_hourly GROUP BY type ORDER BY type`,
    );
    assert.deepEqual(rows.map((r) => r.total), [total, total, total]);
    assert.equal(s.breaches, 4); // every user is far over 1,000 bytes

    await store.put(keys[0], new TextEncoder().encode("not parquet"));
    const bad = await runner.runHour(H, "manual");
    assert.equal(bad.status, "failed");
    assert.ok(bad.error!.includes(keys[0]), bad.error ?? "");
  } finally {
    await db.close();
    await fresh.drop();
  }
});
