/**
 * Crash safety of the speed layer: a child process (tests/_support/speed_child.ts)
 * is killed with SIGKILL at random moments while it consumes, and restarted;
 * the final `bytes` rows, dead letters and lake (rows and file names) equal an
 * uninterrupted run over the same topic into another database and lake.
 *
 * Each child joins a fresh consumer group: a SIGKILLed member would otherwise
 * hold its partitions until its 30 s session times out. Resuming therefore
 * relies on the layer's own progress in PostgreSQL (min of the applied and the
 * lake-durable offset), which is exactly what is under test.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { createGenerator } from "../../src/simulator/generator.ts";
import { freshDatabase, freshTopic } from "../_support/services.ts";
import {
  endOffsets,
  type PlanOptions,
  produce,
  readBytes,
  readLake,
  sorted,
  speedPlan,
  speedPlanYaml,
  startOnKafka,
  waitCommitted,
  waitFor,
} from "../_support/speed_fixture.ts";

const CHILD = new URL("../_support/speed_child.ts", import.meta.url).pathname;

interface Child {
  proc: Deno.ChildProcess;
  status(): { partitions: { partition: number; storedOffset: number }[] };
}

function spawn(configPath: string): Child {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, "--config", configPath],
    stdout: "piped",
    stderr: "inherit",
    env: { LOG_LEVEL: "error" },
  }).spawn();
  let last = { partitions: [] };
  (async () => {
    const dec = new TextDecoderStream();
    let buf = "";
    for await (const chunk of proc.stdout.pipeThrough(dec)) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          last = JSON.parse(line).status;
        } catch { /* not a status line */ }
      }
    }
  })().catch(() => {});
  return { proc, status: () => last };
}

async function deadLetters(db: { query<T>(s: string): Promise<T[]> }) {
  const rows = await db.query<{ partition: number; offset: number; reason: string }>(
    `SELECT "partition", "offset", reason FROM dead_letters ORDER BY 1, 2`,
  );
  return rows.map((r) => `${r.partition}:${r.offset}:${r.reason}`);
}

async function lakeView(plan: ReturnType<typeof speedPlan>) {
  const rows = await readLake(openStore(plan.lake));
  const ids = rows.map((r) => `${r.partition}:${r.offset}`);
  const files = [...new Set(rows.map((r) => r.key))].sort();
  return { ids: ids.sort(), unique: new Set(ids).size, files };
}

Deno.test({
  name:
    "speed layer: repeated SIGKILL and restart end with the tables and lake of an uninterrupted run",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const topic = await freshTopic("speed-kill", 3);
    const startMs = Date.now() - 3 * 3_600_000;
    // Spans two event hours; late events on both sides of the lateness; bad messages.
    const gen = createGenerator({
      seed: 11,
      devices: 2_000,
      antennas: 20,
      startMs,
      rate: 40,
      lateShare: 0.05,
      maxLatenessMs: 20_000,
      malformedShare: 0.01,
    });
    const items = Array.from({ length: 60_000 }, () => gen.next());
    await produce(topic, items.map((i) => ({ key: i.key, value: i.value })));
    const ends = await endOffsets(topic);

    const dbA = await freshDatabase("speed_kill_a");
    const dbB = await freshDatabase("speed_kill_b");
    const lakeA = await Deno.makeTempDir({ prefix: "speed_kill_a_" });
    const lakeB = await Deno.makeTempDir({ prefix: "speed_kill_b_" });
    // Rolls by rows only: age-based cuts depend on timing, so file names would too.
    const base: Omit<PlanOptions, "group" | "dbUrl" | "lakeUri"> = {
      topic,
      windowMs: 60_000,
      latenessMs: 5_000,
      idleMs: 4_000,
      flushMs: 200,
      maxRows: 2_000,
      maxAgeMs: 3_600_000,
    };
    const dbs = [await openDb({ url: dbA.url }), await openDb({ url: dbB.url })];
    const children: Child[] = [];
    try {
      // A: killed and restarted.
      const kills = 4;
      for (let run = 0; run <= kills; run++) {
        const cfg = await Deno.makeTempFile({ suffix: ".yaml" });
        await Deno.writeTextFile(
          cfg,
          speedPlanYaml({
            ...base,
            group: `${topic}-a${run}`,
            dbUrl: dbA.url,
            lakeUri: `file://${lakeA}`,
          }),
        );
        const child = spawn(cfg);
        children.push(child);
        if (run < kills) {
          await delay(800 + Math.random() * 2_200);
          child.proc.kill("SIGKILL");
          await child.proc.status;
          continue;
        }
        await waitFor("child A stored everything", () => {
          const parts = child.status().partitions;
          return [...ends].every(([p, end]) =>
            parts.some((s) => s.partition === p && s.storedOffset >= end)
          );
        }, 120_000);
      }

      // B: uninterrupted, in process.
      await migrate(dbs[1]);
      const planB = speedPlan({
        ...base,
        group: `${topic}-b`,
        dbUrl: dbB.url,
        lakeUri: `file://${lakeB}`,
      });
      const { layer } = await startOnKafka(planB, dbs[1], new Registry());
      await waitCommitted(layer, topic, 120_000, true);

      // Both close their last windows by idleness (after idleMs without events:
      // wait it out first, or two equal counts could be read before either
      // closed); then stop both cleanly.
      await delay(base.idleMs! + 2_000);
      const rowsB = async () => (await readBytes(dbs[1])).size;
      const rowsA = async () => (await readBytes(dbs[0])).size;
      let stable = -1;
      await waitFor("last windows visible", async () => {
        const [a, b] = [await rowsA(), await rowsB()];
        const done = a === b && a === stable;
        stable = b;
        return done;
      }, 30_000);
      await layer.stop();
      const last = children[children.length - 1].proc;
      const t0 = Date.now();
      last.kill("SIGTERM");
      const st = await last.status;
      assert.equal(st.code, 0, "SIGTERM exits 0");
      assert.ok(Date.now() - t0 < 10_000, "SIGTERM stops within 10 s");

      const planA = speedPlan({ ...base, group: "x", dbUrl: dbA.url, lakeUri: `file://${lakeA}` });
      assert.deepEqual(sorted(await readBytes(dbs[0])), sorted(await readBytes(dbs[1])));
      assert.deepEqual(await deadLetters(dbs[0]), await deadLetters(dbs[1]));
      const [la, lb] = [await lakeView(planA), await lakeView(planB)];
      assert.equal(la.unique, la.ids.length, "no lake row twice after the kills");
      assert.deepEqual(la.ids, lb.ids);
      assert.deepEqual(la.files, lb.files);
      assert.equal(la.ids.length, items.filter((i) => i.event).length);
    } finally {
      for (const c of children) {
        try {
          c.proc.kill("SIGKILL");
        } catch { /* exited */ }
        await c.proc.status;
      }
      for (const db of dbs) await db.close();
      await dbA.drop();
      await dbB.drop();
      await Deno.remove(lakeA, { recursive: true });
      await Deno.remove(lakeB, { recursive: true });
    }
  },
});
