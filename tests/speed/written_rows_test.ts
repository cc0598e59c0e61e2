/**
 * The speed layer inserts partial rows it knows to be new and upserts the
 * others (src/speed/written_rows.ts): the split, and the sink's fallback when
 * a row taken for new is already stored, on both database backends.
 */
import assert from "node:assert/strict";
import type { WindowDelta } from "../../src/core/partition_windows.ts";
import { type Db, migrate, openDb } from "../../src/db/mod.ts";
import { writeFlush } from "../../src/speed/sink.ts";
import { WrittenRows } from "../../src/speed/written_rows.ts";
import { freshDatabase } from "../_support/services.ts";

const W = 60_000;
const delta = (windowStart: number, key: string, value = 1): WindowDelta => ({
  metric: "m",
  windowStart,
  key,
  value,
});
const keys = (ds: readonly WindowDelta[]) => ds.map((d) => `${d.windowStart}/${d.key}`);

Deno.test("WrittenRows.split() inserts a row the first time a flush takes it, then upserts it", () => {
  const w = new WrittenRows(-Infinity, W);
  const first = w.split([delta(0, "a"), delta(0, "b"), delta(W, "a")]);
  assert.deepEqual(keys(first.inserts), ["0/a", "0/b", `${W}/a`]);
  assert.deepEqual(first.upserts, []);
  const second = w.split([delta(0, "a"), delta(0, "c"), delta(W, "a")]);
  assert.deepEqual(keys(second.inserts), ["0/c"]);
  assert.deepEqual(keys(second.upserts), ["0/a", `${W}/a`]);
});

Deno.test("WrittenRows.split() upserts every row of a window the restored clock reached", () => {
  // Clock restored inside window W: windows 0 and W may hold rows, 2W cannot.
  const w = new WrittenRows(W + 5_000, W);
  const s = w.split([delta(0, "a"), delta(W, "a"), delta(2 * W, "a")]);
  assert.deepEqual(keys(s.upserts), ["0/a", `${W}/a`]);
  assert.deepEqual(keys(s.inserts), [`${2 * W}/a`]);
});

Deno.test("WrittenRows.split() upserts count_distinct members", () => {
  const w = new WrittenRows(-Infinity, W);
  const s = w.split([{ metric: "d", windowStart: 0, key: "a", members: ["x"] }]);
  assert.equal(s.upserts.length, 1);
  assert.equal(s.inserts.length, 0);
});

Deno.test("WrittenRows.prune() forgets windows only once they are later than the lateness", () => {
  const w = new WrittenRows(-Infinity, W);
  w.split([delta(0, "a"), delta(W, "b")]);
  w.prune(W + 4_999, 5_000); // window 0 still takes late events
  assert.equal(w.size, 2);
  w.prune(W + 5_000, 5_000);
  assert.equal(w.size, 1);
});

async function stored(db: Db): Promise<[string, number][]> {
  const rows = await db.query<{ id: string; value: number }>(
    `SELECT id, value FROM speed_partials WHERE type = 'm' ORDER BY id`,
  );
  return rows.map((r) => [r.id, Number(r.value)]);
}

async function fallbackCase(db: Db) {
  await migrate(db);
  const aggs = new Map([["m", "sum" as const]]);
  const part = (inserts: WindowDelta[], deltas: WindowDelta[], nextOffset: number) => ({
    partition: 0,
    deltas,
    inserts,
    letters: [],
    nextOffset,
    lakeOffset: nextOffset,
    clockMs: 0,
    watermarkMs: -5_000,
  });
  assert.equal(await writeFlush(db, "t", W, aggs, [part([delta(0, "a", 2)], [], 1)]), true);
  // "a" taken for new again (a row this tracker could not know of): redone as an upsert.
  const ok = await writeFlush(db, "t", W, aggs, [
    part([delta(0, "a", 3), delta(0, "b", 5)], [], 2),
  ]);
  assert.equal(ok, false);
  assert.deepEqual(await stored(db), [["a", 5], ["b", 5]]);
  const [p] = await db.query<{ next_offset: number }>(
    "SELECT next_offset FROM speed_progress WHERE topic = 't'",
  );
  assert.equal(Number(p.next_offset), 2);
}

Deno.test("writeFlush() redoes a flush as upserts when a row taken for new is stored (PGlite)", async () => {
  const db = await openDb({});
  try {
    await fallbackCase(db);
  } finally {
    await db.close();
  }
});

Deno.test({
  name: "writeFlush() redoes a flush as upserts when a row taken for new is stored (PostgreSQL)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const fresh = await freshDatabase("written_rows");
    const db = await openDb({ url: fresh.url });
    try {
      await fallbackCase(db);
    } finally {
      await db.close();
      await fresh.drop();
    }
  },
});
