/**
 * The plan's generation in PostgreSQL (src/runtime/generation.ts): a start on
 * the plan last applied keeps its generation, a start on another plan gets
 * the next one, and a reload's record is what the next start continues from.
 * Also on the embedded PGlite, which a default start uses.
 */
import assert from "node:assert/strict";
import { freshDatabase } from "../_support/services.ts";
import { type Db, migrate, openDb } from "../../src/db/mod.ts";
import { saveGeneration, startGeneration } from "../../src/runtime/mod.ts";

async function generations(db: Db): Promise<void> {
  await migrate(db);
  const first = await startGeneration(db, "events", "hash-a");
  assert.equal(first.generation, 1, "the first start is generation 1");
  const again = await startGeneration(db, "events", "hash-a");
  assert.equal(again.generation, 1, "a restart on the same plan keeps it");
  assert.equal(again.appliedAt, first.appliedAt, "and when it was first applied");
  assert.equal((await startGeneration(db, "events", "hash-b")).generation, 2, "a changed plan");
  assert.equal((await startGeneration(db, "events", "hash-b")).generation, 2);
  // A reload applied generation 3 (hash-c): a restart on it continues from there.
  await saveGeneration(db, "events", 3, "hash-c");
  assert.equal((await startGeneration(db, "events", "hash-c")).generation, 3);
  assert.equal(
    (await startGeneration(db, "events", "hash-a")).generation,
    4,
    "back to an old plan",
  );
  assert.equal((await startGeneration(db, "other", "hash-a")).generation, 1, "one per topic");
}

Deno.test("startGeneration() keeps the generation of the same plan and counts changed ones (PostgreSQL)", async () => {
  const fresh = await freshDatabase("gen");
  const db = await openDb({ url: fresh.url, maxConnections: 2 });
  try {
    await generations(db);
  } finally {
    await db.close();
    await fresh.drop();
  }
});

Deno.test("startGeneration() keeps the generation of the same plan and counts changed ones (PGlite)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gen_pglite_" });
  const db = await openDb({ embeddedDir: dir });
  try {
    await generations(db);
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true });
  }
});
