/**
 * When the lake will not catch up (src/backfill/lake_wait.ts), on real
 * PostgreSQL, with the speed layer's progress written as a stopped or a
 * running pipeline leaves it: `deno task backfill` beside a pipeline that
 * was stopped before its lake files were written gives the rows back and
 * exits 1 at once, saying where the lake is and what to do; while a speed
 * layer records progress, a drain waits, and its status says why, until
 * that progress stands still longer than a roll and a flush.
 */
import assert from "node:assert/strict";
import { planFromYaml } from "../../src/config/load.ts";
import { migrate, openDb, type Queryable } from "../../src/db/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import { createLogger } from "../../src/log.ts";
import { createBackfillWorker, startManualBackfill } from "../../src/backfill/mod.ts";
import { main as backfillMain } from "../../src/cli/backfill.ts";
import { freshDatabase, uniqueName } from "../_support/services.ts";

const quiet = createLogger({ test: "backfill_stalled" });

function yaml(o: { topic: string; dbUrl: string; dir: string }): string {
  return `source:
  kind: kafka
  kafka:
    topic: ${o.topic}
speed:
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id }
lake:
  uri: file://${o.dir}/lake
batch:
  enabled: false
  metrics: []
database:
  url: ${o.dbUrl}
`;
}

/** A partition whose speed layer stored offset 500 while its lake is durable up to 0. */
async function lagging(db: Queryable, topic: string, ago: string): Promise<void> {
  await db.query("INSERT INTO speed_topics (topic, partitions) VALUES ($1, 1)", [topic]);
  await db.query(
    `INSERT INTO speed_progress (topic, "partition", next_offset, lake_offset, updated_at)
     VALUES ($1, 0, 500, 0, now() - $2::interval)`,
    [topic, ago],
  );
}

async function scene(prefix: string, ago: string) {
  const fresh = await freshDatabase(prefix);
  const db = await openDb({ url: fresh.url, maxConnections: 2 });
  const dir = await Deno.makeTempDir({ prefix: `${prefix}_` });
  const topic = uniqueName(prefix).replaceAll("_", "-");
  const file = `${dir}/pipeline.yaml`;
  await Deno.writeTextFile(file, yaml({ topic, dbUrl: fresh.url, dir }));
  await migrate(db);
  await lagging(db, topic, ago);
  return {
    db,
    topic,
    file,
    plan: planFromYaml(yaml({ topic, dbUrl: fresh.url, dir }), { env: {} }),
    async close() {
      await db.close();
      await fresh.drop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("backfill CLI beside a pipeline stopped before its lake files were written: exit 1 at once, saying why and what to do", async () => {
  const s = await scene("bfstopped", "10 minutes");
  const errors: string[] = [];
  const realError = console.error;
  console.error = (...a: unknown[]) => errors.push(a.join(" "));
  try {
    const t0 = Date.now();
    const code = await backfillMain(["--metric", "antenna_bytes_total", "--config", s.file]);
    console.error = realError;
    assert.equal(code, 1);
    assert.ok(Date.now() - t0 < 20_000, `gave up after ${Date.now() - t0} ms`);
    assert.equal(errors.length, 1, errors.join("\n"));
    assert.match(
      errors[0],
      /^the lake is durable up to offset 0 of partition 0, not up to 500 where the speed layer's stored offsets are, and the speed layer has recorded nothing for it for 60\ds \(it rolls its files every 1m\): the pipeline is not running \(it was stopped before its files were written\); start it, and its backfill finishes the rest$/,
    );
    // The rows are given back: the pipeline's own backfill takes them when it starts.
    const rows = await s.db.query<{ holder: string | null; finished_at: Date | null }>(
      "SELECT holder, finished_at FROM backfill_partitions WHERE topic = $1",
      [s.topic],
    );
    assert.deepEqual(rows, [{ holder: null, finished_at: null }]);
  } finally {
    console.error = realError;
    await s.close();
  }
});

Deno.test("a drain waits while the speed layer records progress, its status says why, and gives up once that stands still", async () => {
  const s = await scene("bfalive", "0 seconds");
  try {
    const holder = { id: "cli:1", gone: () => false };
    await startManualBackfill(
      s.db,
      s.topic,
      { metric: s.plan.speed.metrics[0], fromMs: -Infinity, untilMs: Infinity },
      holder,
      60_000,
    );
    const worker = createBackfillWorker({
      db: s.db,
      store: openStore(s.plan.lake),
      topic: s.topic,
      plan: () => s.plan,
      log: quiet,
      holder,
      pollMs: 100,
    });
    let outcome: string | undefined;
    const drained = worker.drain({ giveUpWhenStalled: true }).then((o) => outcome = o);
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(outcome, undefined, "a drain beside a live speed layer waits");
    const [m] = (await worker.status()).metrics;
    assert.equal(m.state, "running");
    assert.deepEqual(m.waiting.map((w) => [w.partition, w.reason]), [[
      0,
      "waiting for the lake's files up to offset 500 of partition 0 (durable up to 0): " +
      "the speed layer rolls them every 1m",
    ]]);
    // The speed layer stops: its progress is now older than a roll, a flush and the margin.
    await s.db.query(
      "UPDATE speed_progress SET updated_at = now() - interval '92 seconds' WHERE topic = $1",
      [s.topic],
    );
    await drained;
    assert.equal(outcome, "gave_up");
    assert.match(worker.gaveUpBecause ?? "", /recorded nothing for it for 9\ds/);
    assert.deepEqual((await worker.status()).metrics[0].waiting, []);
  } finally {
    await s.close();
  }
});
