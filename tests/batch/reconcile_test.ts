/**
 * Reconciliation: the rule (synchronously), and the speed side read from the
 * speed layer's hourly totals against the old way, every partial of the hour
 * folded through `bytes`, on real PostgreSQL, after every kind of write the
 * sink does (new rows, upserts of a replayed window, a backfill's writes, a
 * backfill's deletion of part of the hour) and with windows still open.
 */
import assert from "node:assert/strict";
import { readSpeedSide, reconcile } from "../../src/batch/reconcile.ts";
import type { WindowDelta } from "../../src/core/mod.ts";
import { type Db, migrate, openDb } from "../../src/db/mod.ts";
import {
  deleteMetricRows,
  type PartitionFlush,
  upsertMetrics,
  writeFlush,
  writeWindowDeltas,
} from "../../src/speed/sink.ts";
import { apiTestPlan } from "../_support/api.ts";
import { freshDatabase } from "../_support/services.ts";

Deno.test("reconcile() explains a difference by late drops and unknown devices, and only once the speed side is final", () => {
  const cases: [string, number, number, Parameters<typeof reconcile>[2], number][] = [
    ["equal", 100, 0, { value: 100, lateDropped: 0, final: true }, 0],
    ["late-dropped events explain it", 110, 0, { value: 100, lateDropped: 10, final: true }, 0],
    ["unknown devices dropped explain it", 90, 10, { value: 100, lateDropped: 0, final: true }, 0],
    ["lost by the batch", 60, 0, { value: 100, lateDropped: 0, final: true }, -40],
    ["lost by the speed layer", 150, 0, { value: 100, lateDropped: 10, final: true }, 40],
    ["windows still open: not unexplained yet", 150, 0, {
      value: 100,
      lateDropped: 10,
      final: false,
    }, 0],
  ];
  for (const [name, batch, unknown, speed, unexplained] of cases) {
    const r = reconcile(batch, unknown, speed);
    assert.equal(r.difference, batch - speed.value, name);
    assert.equal(r.unexplained, unexplained, name);
    assert.equal(r.speedFinal, speed.final, name);
    assert.equal(r.speedValue, speed.value, name);
    assert.equal(r.lateDropped, speed.lateDropped, name);
  }
});

const H = Date.UTC(2026, 10, 28, 10);
const W = 5 * 60_000;
const METRICS = ["antenna_bytes_total", "user_bytes_total", "app_bytes_total"];

/** Deterministic pseudo-random deltas of the three metrics, one partition, windows of [from, to). */
function deltas(seed: number, from: number, to: number, ids: number): WindowDelta[] {
  let x = seed;
  const rnd = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  const out: WindowDelta[] = [];
  for (let w = from; w < to; w += W) {
    for (const metric of METRICS) {
      for (let i = 0; i < ids; i++) {
        if (rnd() < 0.3) continue;
        out.push({
          metric,
          windowStart: w,
          key: `${metric[0]}${i}`,
          value: 1 + Math.floor(rnd() * 1e6),
        });
      }
    }
  }
  return out;
}

Deno.test("readSpeedSide() from hourly totals equals the sum of bytes over the hour (PostgreSQL)", async () => {
  const fresh = await freshDatabase("reconcile");
  const db = await openDb({ url: fresh.url, maxConnections: 4 });
  try {
    await bothWays(db);
  } finally {
    await db.close();
    await fresh.drop();
  }
});

Deno.test("readSpeedSide() from hourly totals equals the sum of bytes over the hour (PGlite)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "reconcile_pglite_" });
  const db = await openDb({ embeddedDir: `${dir}/db` });
  try {
    await bothWays(db);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

async function bothWays(db: Db): Promise<void> {
  {
    await migrate(db);
    const plan = apiTestPlan({ lakeUri: "file:///nowhere" });
    const topic = plan.source.kafka.topic;
    const aggs = new Map(plan.speed.metrics.map((m) => [m.name, m.aggregation]));
    await upsertMetrics(db, plan.speed);
    const flush = (partition: number, d: WindowDelta[], watermarkMs: number, next: number) =>
      ({
        partition,
        deltas: d,
        letters: [],
        nextOffset: next,
        lakeOffset: next,
        clockMs: watermarkMs,
        watermarkMs,
      }) satisfies PartitionFlush;
    // The hour before, the hour, the hour after, on three partitions; rows
    // taken for new go in as inserts, as the live layer's first flush does.
    const first: PartitionFlush[] = [0, 1, 2].map((p) => ({
      ...flush(p, [], H + 30 * 60_000, 100),
      inserts: deltas(11 + p, H - 2 * W, H + 35 * 60_000, 40),
    }));
    await writeFlush(db, topic, W, aggs, first);
    // A second flush upserts into stored windows (late updates, a replay).
    await writeFlush(db, topic, W, aggs, [
      flush(0, deltas(21, H + 20 * 60_000, H + 70 * 60_000, 40), H + 75 * 60_000, 200),
      flush(1, deltas(22, H, H + 60 * 60_000, 40), H + 57 * 60_000, 200), // last window open
      flush(2, deltas(23, H + 10 * 60_000, H + 40 * 60_000, 40), H + 40 * 60_000, 200),
    ]);
    // A backfill: a replay's writes to partition 2, and a deletion from inside the hour on.
    await db.transaction(async (tx) => {
      await writeWindowDeltas(tx, topic, W, aggs, 2, deltas(31, H, H + 40 * 60_000, 20));
      await deleteMetricRows(tx, topic, "app_bytes_total", 0, H + 25 * 60_000, Infinity);
      await writeWindowDeltas(
        tx,
        topic,
        W,
        aggs,
        0,
        deltas(32, H + 25 * 60_000, H + 65 * 60_000, 10),
      );
    });

    const viaBytes = async (hour: number) =>
      new Map(
        (await db.query<{ type: string; v: string }>(
          `SELECT type, sum(value)::bigint AS v FROM bytes
           WHERE type = ANY($1::text[]) AND timestamp >= $2::timestamp
             AND timestamp < $2::timestamp + interval '1 hour' GROUP BY type`,
          [METRICS, new Date(hour)],
        )).map((r) => [r.type, Number(r.v)]),
      );
    for (const hour of [H - 3_600_000, H, H + 3_600_000]) {
      const old = await viaBytes(hour);
      const side = await readSpeedSide(db, hour, METRICS);
      for (const m of METRICS) {
        assert.equal(side.get(m)!.value, old.get(m) ?? 0, `${new Date(hour).toISOString()} ${m}`);
      }
    }
    // Hour H: partition 1's last window is open, so nothing of H is final;
    // the hour before is; the hour after has open windows on partition 0.
    assert.ok([...(await readSpeedSide(db, H, METRICS)).values()].every((s) => !s.final));
    assert.equal((await readSpeedSide(db, H, METRICS, true)).size, 0, "finalOnly leaves them out");
    assert.ok(
      [...(await readSpeedSide(db, H - 3_600_000, METRICS)).values()].every((s) => s.final),
    );
    // Partition 1's watermark passes the hour: H is final, and still equal.
    await writeFlush(db, topic, W, aggs, [flush(1, [], H + 60 * 60_000, 300)]);
    const old = await viaBytes(H);
    const side = await readSpeedSide(db, H, METRICS);
    for (const m of METRICS) {
      assert.equal(side.get(m)!.value, old.get(m), m);
      assert.equal(side.get(m)!.final, true, m);
    }
    // The totals are the partials' sums, per partition (the test's own fold).
    const partials = await db.query<{ type: string; p: number; v: string }>(
      `SELECT type, "partition" AS p, sum(value)::bigint AS v FROM speed_partials
       WHERE "timestamp" >= $1::timestamp AND "timestamp" < $1::timestamp + interval '1 hour'
       GROUP BY type, "partition" ORDER BY type, "partition"`,
      [new Date(H)],
    );
    const totals = await db.query<{ type: string; p: number; v: string }>(
      `SELECT type, "partition" AS p, value::bigint AS v FROM speed_hourly
       WHERE hour = $1::timestamp ORDER BY type, "partition"`,
      [new Date(H)],
    );
    assert.deepEqual(totals.map((r) => ({ ...r })), partials.map((r) => ({ ...r })));
  }
}
