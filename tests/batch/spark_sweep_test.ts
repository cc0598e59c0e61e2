/**
 * The files of Spark runs that died (the process killed mid-run, so its own
 * clean-up never ran) are swept by the next Spark run, judged by batch_runs:
 * a finished run's or a run whose lease passed go, a live run's stay, and
 * folders of runs this database does not know stay too. Real PostgreSQL, the
 * lake on local disk and on the GCS emulator; no Spark (the engine's runner
 * is a stand-in that looks at the lake when Spark would start).
 */
import assert from "node:assert/strict";
import { freshDatabase, gcsEndpoint, uniqueName } from "../_support/services.ts";
import { type Db, migrate, openDb } from "../../src/db/mod.ts";
import { type ObjectStore, openStore } from "../../src/lake/mod.ts";
import { claimNew, markFailed } from "../../src/batch/runs.ts";
import { RUNS_PREFIX, sweepDeadRuns } from "../../src/batch/spark/sweep.ts";
import { sparkEngine } from "../../src/batch/spark/engine.ts";
import { SparkRunError } from "../../src/batch/spark/errors.ts";
import { generateHour, testPlan, writeLakeHour } from "../_support/batch.ts";
import type { Plan } from "../../src/config/mod.ts";
import { createLogger } from "../../src/log.ts";

const H = Date.UTC(2026, 10, 28, 10);
const HOUR = 3_600_000;
const quiet = createLogger({ test: "spark_sweep" });

/** What a run leaves behind: its inputs and Spark's half-written output. */
async function leaveRunFiles(store: ObjectStore, folder: string): Promise<void> {
  const bytes = new TextEncoder().encode("x");
  for (const f of ["users.parquet", "hour.sql", "out/hour/_temporary/0/part-00000.parquet"]) {
    await store.put(`${RUNS_PREFIX}${folder}/${f}`, bytes);
  }
}

/** The run folders left in the lake, sorted. */
async function folders(store: ObjectStore): Promise<string[]> {
  const keys = (await store.list(RUNS_PREFIX)).map((e) => e.key.split("/")[1]);
  return [...new Set(keys)].sort();
}

/** Runs in every state the sweep tells apart, each with files in the lake. */
async function runsInEveryState(db: Db, store: ObjectStore) {
  const succeeded = await claimNew(db, H, "manual", 60_000);
  await db.query(
    "UPDATE batch_runs SET status = 'succeeded', finished_at = now(), lease_until = NULL WHERE run_id = $1",
    [succeeded],
  );
  const failed = await claimNew(db, H + HOUR, "manual", 60_000);
  await markFailed(db, failed, "spark-sql failed");
  // Killed mid-run: still `running`, but nobody renews its lease any more.
  const expired = await claimNew(db, H + 2 * HOUR, "manual", 1);
  const live = await claimNew(db, H + 3 * HOUR, "manual", 600_000);
  const current = await claimNew(db, H + 4 * HOUR, "manual", 600_000);
  for (const id of [succeeded, failed, expired, live, current, "987654321"]) {
    await leaveRunFiles(store, `run-${id}`);
  }
  await leaveRunFiles(store, "run-bench-local-2-");
  await new Promise((r) => setTimeout(r, 20));
  return { succeeded, failed, expired, live, current };
}

async function withLake(kind: "file" | "gs", fn: (plan: Plan, db: Db) => Promise<void>) {
  const fresh = await freshDatabase("sparksweep");
  const db = await openDb({ url: fresh.url, maxConnections: 2 });
  const dir = kind === "file" ? await Deno.makeTempDir({ prefix: "spark-sweep-" }) : "";
  const plan = kind === "file" ? testPlan({ lakeUri: `file://${dir}` }) : testPlan({
    lakeUri: `gs://${uniqueName("sparksweep").replaceAll("_", "-")}/lake`,
    gcsEndpoint: gcsEndpoint(),
  });
  try {
    await migrate(db);
    await fn(plan, db);
  } finally {
    await db.close();
    await fresh.drop();
    if (dir) await Deno.remove(dir, { recursive: true });
  }
}

for (const kind of ["file", "gs"] as const) {
  Deno.test(`sweepDeadRuns() removes finished and lease-expired runs' files, never a live run's (${kind} lake)`, async () => {
    await withLake(kind, async (plan, db) => {
      const store = openStore(plan.lake);
      const r = await runsInEveryState(db, store);
      const removed = await sweepDeadRuns(store, plan.lake, db, quiet, r.current);
      assert.deepEqual(
        removed.sort(),
        [r.succeeded, r.failed, r.expired].map((id) => `${RUNS_PREFIX}run-${id}/`).sort(),
      );
      assert.deepEqual(
        await folders(store),
        [`run-${r.current}`, `run-${r.live}`, "run-987654321", "run-bench-local-2-"].sort(),
      );
      if (kind === "file") {
        // Spark's own folders of a dead run go too, not only the files the store lists.
        const gone = await Deno.stat(`${plan.lake.root}/${RUNS_PREFIX}run-${r.failed}`).then(
          () => false,
          () => true,
        );
        assert.ok(gone);
      }
      // Nothing left to sweep: a second pass removes nothing.
      assert.deepEqual(await sweepDeadRuns(store, plan.lake, db, quiet, r.current), []);
    });
  });
}

Deno.test("a Spark run sweeps dead runs' files before Spark starts, and leaves no files of its own", async () => {
  await withLake("file", async (plan, db) => {
    const store = openStore(plan.lake);
    const r = await runsInEveryState(db, store);
    await writeLakeHour(
      store,
      H + 4 * HOUR,
      generateHour({ hour: H + 4 * HOUR, events: 10, devices: ["d"], antennas: 1, apps: ["A"] }),
    );
    let seen: string[] = [];
    const engine = sparkEngine({
      db,
      runner: async () => {
        seen = await folders(store);
        throw new SparkRunError("stand-in: no Spark here");
      },
    });
    const run = engine.computeHour({
      plan: { ...plan, batch: { ...plan.batch, engine: "spark" } },
      store,
      hour: H + 4 * HOUR,
      runId: r.current,
      users: new Map(),
      dropped: [],
      log: quiet,
    });
    await assert.rejects(run, SparkRunError);
    assert.deepEqual(
      seen,
      [`run-${r.current}`, `run-${r.live}`, "run-987654321", "run-bench-local-2-"].sort(),
    );
    assert.deepEqual(
      await folders(store),
      [`run-${r.live}`, "run-987654321", "run-bench-local-2-"].sort(),
    );
  });
});
