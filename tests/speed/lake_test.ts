/**
 * The lake as the speed layer writes it, read back with hyparquet: Hive-style
 * hour folders, file names from (partition, first offset, last offset), column
 * types, and one row per valid event; on a local folder and on the GCS emulator.
 */
import assert from "node:assert/strict";
import { Storage } from "@google-cloud/storage";
import { migrate, openDb } from "../../src/db/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { createGenerator } from "../../src/simulator/generator.ts";
import { freshDatabase, freshTopic, gcsEndpoint, uniqueName } from "../_support/services.ts";
import {
  produce,
  readLake,
  speedPlan,
  startOnKafka,
  waitCommitted,
} from "../_support/speed_fixture.ts";

const PATH =
  /^year=(\d{4})\/month=(\d\d)\/day=(\d\d)\/hour=(\d\d)\/part-p(\d{4})-o(\d{20})-o(\d{20})\.parquet$/;

async function roundTrip(kind: "file" | "gcs") {
  const topic = await freshTopic(`speed-lake-${kind}`, 3);
  const fdb = await freshDatabase(`speed_lake_${kind}`);
  let lakeUri: string;
  let cleanupLake: () => Promise<void>;
  if (kind === "file") {
    const dir = await Deno.makeTempDir({ prefix: "speed_lake_" });
    lakeUri = `file://${dir}`;
    cleanupLake = () => Deno.remove(dir, { recursive: true });
  } else {
    const bucket = uniqueName("speedlake").replaceAll("_", "-");
    await new Storage({ apiEndpoint: gcsEndpoint(), projectId: "test" }).createBucket(bucket);
    lakeUri = `gs://${bucket}/lake`;
    cleanupLake = async () => {};
  }
  const plan = speedPlan({
    topic,
    group: `${topic}-g`,
    dbUrl: fdb.url,
    lakeUri,
    gcsEndpoint: kind === "gcs" ? gcsEndpoint() : undefined,
    maxRows: 300,
  });
  // Two event hours.
  const startMs = Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000 - 60_000;
  const gen = createGenerator({ seed: 9, startMs, rate: 5, devices: 30 });
  const items = Array.from({ length: 1_000 }, () => gen.next());
  await produce(topic, items.map((i) => ({ key: i.key, value: i.value })));
  const db = await openDb({ url: fdb.url });
  try {
    await migrate(db);
    const { layer, store } = await startOnKafka(plan, db, new Registry());
    await waitCommitted(layer, topic);
    await layer.stop();
    const rows = await readLake(store);
    assert.equal(rows.length, 1_000);
    for (const r of rows) {
      const m = PATH.exec(r.key);
      assert.ok(m, `lake key ${r.key}`);
      assert.ok(r.timestamp instanceof Date);
      const d = r.timestamp;
      assert.deepEqual(
        [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])],
        [d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours()],
      );
      assert.equal(typeof r.bytes, "bigint");
      assert.equal(typeof r.offset, "bigint");
      assert.equal(typeof r.partition, "number");
      assert.equal(Number(m[5]), r.partition);
      assert.ok(BigInt(m[6]) <= r.offset && r.offset <= BigInt(m[7]));
      for (const s of [r.id, r.antenna_id, r.app]) assert.equal(typeof s, "string");
    }
    const byHour = new Map<number, number>();
    for (const i of items) {
      const h = Math.floor(i.event!.timestamp / 3600);
      byHour.set(h, (byHour.get(h) ?? 0) + 1);
    }
    const got = new Map<number, number>();
    for (const r of rows) {
      const h = Math.floor(r.timestamp.getTime() / 3_600_000);
      got.set(h, (got.get(h) ?? 0) + 1);
    }
    assert.deepEqual(got, byHour);
    assert.ok(new Set(rows.map((r) => r.key)).size > 3, "files rolled by rows");
    const expected = items.map((i) => i.event!).map((e) => `${e.id}|${e.bytes}|${e.timestamp}`);
    const actual = rows.map((r) => `${r.id}|${r.bytes}|${r.timestamp.getTime() / 1000}`);
    assert.deepEqual(actual.sort(), expected.sort());
  } finally {
    await db.close();
    await fdb.drop();
    await cleanupLake();
  }
}

Deno.test({
  name: "speed layer lake: paths, types and rows read back with hyparquet (local folder)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => roundTrip("file"),
});

Deno.test({
  name: "speed layer lake: paths, types and rows read back with hyparquet (GCS emulator)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => roundTrip("gcs"),
});
