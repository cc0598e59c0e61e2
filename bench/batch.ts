/**
 * `deno task bench:batch`: one hour of 3,600,000 events (1,000 events/s,
 * 100,000 devices, all with user metadata) written to a local lake in the
 * speed layer's format (the lake encoder, 3 Kafka partitions × 5 roll
 * segments of 240,000 rows), then the batch job for that hour timed end to
 * end (read, join, aggregate, write to PostgreSQL). A baseline in the same
 * run reads the same files with plain hyparquet, no aggregation. The lake is
 * written by a child process so the job's peak RSS is its own. Figures go to
 * BENCHMARKS.md under "## Batch layer".
 *
 * `--events N` sets the hour's events (issue 18's workload: `--events 712918`);
 * `--speed` also writes the hour's speed windows through the speed layer's
 * sink first (partials per partition and hourly totals), so the job's write
 * phase reconciles against what a running pipeline would hold; the job's
 * phase times are then printed. Either option leaves BENCHMARKS.md alone.
 */
import postgres from "postgres";
import { parquetRead } from "hyparquet";
import { stackUp } from "../src/stack/mod.ts";
import { migrate, openDb } from "../src/db/mod.ts";
import { listHour, openStore, readHour } from "../src/lake/mod.ts";
import { createBatchRunner } from "../src/batch/mod.ts";
import { generateHour, insertUsers, testPlan, writeLakeHour } from "../tests/_support/batch.ts";
import { insertSpeedRows, speedRowsOf } from "../tests/_support/api.ts";
import { DEFAULT_APPS, deviceId } from "../src/simulator/mod.ts";
import { createLogger } from "../src/log.ts";
import { reexecWithStartFlags, startV8Flags, writeSection } from "./_util.ts";

const H = Date.UTC(2026, 10, 28, 10);
const flag = (name: string) => Deno.args.indexOf(name);
const EVENTS = flag("--events") >= 0 ? Number(Deno.args[flag("--events") + 1]) : 3_600_000;
/** Write the hour's speed windows too (the reconciliation's input), report phases, keep BENCHMARKS.md. */
const SPEED = flag("--speed") >= 0;
const DEVICES = 100_000;
const APPS = DEFAULT_APPS;
const COMMAND = "./deno task bench:batch";

const hourColumns = () =>
  generateHour({
    hour: H,
    events: EVENTS,
    devices: Array.from({ length: DEVICES }, (_, i) => deviceId(i)),
    antennas: 500,
    apps: APPS,
    partitions: 3,
  });

async function writeLake(dir: string): Promise<void> {
  const store = openStore(testPlan({ lakeUri: `file://${dir}` }).lake);
  await writeLakeHour(store, H, hourColumns(), 5);
}

class PeakRss {
  peak = Deno.memoryUsage().rss;
  #timer = setInterval(() => this.sample(), 20);
  sample() {
    const r = Deno.memoryUsage().rss;
    if (r > this.peak) this.peak = r;
  }
  stop() {
    this.sample();
    clearInterval(this.#timer);
    return this.peak;
  }
}

const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;
const rate = (n: number, ms: number) =>
  `${Math.round(n / (ms / 1000)).toLocaleString("en-US")} rows/s`;

async function main() {
  if (Deno.args[0] === "--write-lake") return await writeLake(Deno.args[1]);

  const info = await stackUp(["postgres"]);
  const dbName = `bench_batch_${crypto.randomUUID().slice(0, 8)}`;
  const admin = postgres(info.pgUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${dbName}`);
  const url = new URL(info.pgUrl);
  url.pathname = `/${dbName}`;
  const dir = await Deno.makeTempDir({ prefix: "bench_batch_lake_" });
  const db = await openDb({ url: url.toString(), maxConnections: 4 });
  try {
    console.error("writing the lake hour (child process)…");
    let t = performance.now();
    const child = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", import.meta.filename!, "--write-lake", dir, "--events", String(EVENTS)],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    if (!child.success) throw new Error("writing the lake failed");
    const writeMs = performance.now() - t;
    await migrate(db);
    await insertUsers(
      db,
      Array.from({ length: DEVICES }, (_, i) => ({
        id: deviceId(i),
        name: `User ${i >> 1}`,
        email: `user${i >> 1}@example.com`,
        quota: 3_000_000 + (i % 7) * 200_000, // some users over quota
      })),
    );
    const plan = testPlan({ lakeUri: `file://${dir}` });
    const store = openStore(plan.lake);
    const files = await listHour(store, H);
    if (SPEED) {
      t = performance.now();
      const rows = speedRowsOf(hourColumns());
      await insertSpeedRows(db, plan, rows);
      await db.exec("VACUUM ANALYZE");
      console.error(
        `speed windows of the hour written through the sink: ${rows.length} partial rows in ${
          ((performance.now() - t) / 1000).toFixed(1)
        } s`,
      );
    }

    // Baseline: the same files and columns through plain hyparquet, nothing else.
    const columns = ["id", "antenna_id", "app", "bytes"];
    t = performance.now();
    let baseRows = 0;
    for (const f of files) {
      const buf = await Deno.readFile(`${dir}/${f.key}`);
      await parquetRead({
        file: buf.buffer as ArrayBuffer,
        columns,
        onChunk(ch) {
          if (ch.columnName === "bytes") baseRows += ch.rowEnd - ch.rowStart;
        },
      });
    }
    const baseMs = performance.now() - t;

    // The lake's reader alone (what the job starts with).
    t = performance.now();
    const readRows = (await readHour(store, H, columns)).rows;
    const readMs = performance.now() - t;
    // …and as the job reads it: strings as dictionary codes.
    t = performance.now();
    const codedRows = (await readHour(store, H, columns, { strings: "dictionary" })).rows;
    const codedMs = performance.now() - t;

    const rss = new PeakRss();
    // The job logs its phase times on its "batch hour succeeded" line: keep them.
    const phases: Record<string, unknown> = {};
    const base = createLogger({ bench: "batch" });
    const log = {
      ...base,
      info(msg: string, fields?: Record<string, unknown>) {
        if (msg === "batch hour succeeded") Object.assign(phases, fields);
        base.info(msg, fields);
      },
    };
    const runner = createBatchRunner({ plan, db, store, log });
    t = performance.now();
    const s = await runner.runHour(H, "manual");
    const jobMs = performance.now() - t;
    const peak = rss.stop();
    if (s.status !== "succeeded") throw new Error(`batch run failed: ${s.error}`);
    if (
      s.rowsRead !== EVENTS || baseRows !== EVENTS || readRows !== EVENTS || codedRows !== EVENTS
    ) {
      throw new Error(
        `row counts differ: job ${s.rowsRead}, baseline ${baseRows}, read ${readRows}, ${codedRows}`,
      );
    }

    const lines = [
      `- Workload: ${EVENTS.toLocaleString("en-US")} events in one hour (1,000 events/s), ${
        DEVICES.toLocaleString("en-US")
      } devices with user metadata (50,000 emails), 500 antennas, ${APPS.length} apps; ${files.length} Parquet files (3 partitions × 5 segments); lake written in ${
        (writeMs / 1000).toFixed(1)
      } s.`,
      `- Batch job, end to end (read, join, 3 metrics + quota, write ${
        s.rowsWritten.toLocaleString("en-US")
      } rows and ${s.breaches.toLocaleString("en-US")} breaches in one transaction): **${
        (jobMs / 1000).toFixed(2)
      } s, ${rate(EVENTS, jobMs)}**, peak RSS **${mb(peak)}** (process, during the job).`,
      `- Baseline, plain hyparquet read of the same files and columns (${
        columns.join(", ")
      }), no aggregation: ${(baseMs / 1000).toFixed(2)} s, ${rate(EVENTS, baseMs)}.`,
      `- Lake \`readHour\` alone (same columns, into typed arrays): ${
        (readMs / 1000).toFixed(2)
      } s, ${rate(EVENTS, readMs)}; with \`strings: "dictionary"\` (codes, as the job reads): ${
        (codedMs / 1000).toFixed(2)
      } s, ${rate(EVENTS, codedMs)}.`,
      `- Job / baseline: ${
        (jobMs / baseMs).toFixed(1)
      }× (the load-independent figure on a shared machine: compare runs by it).`,
      `- Machine load average during the run: ${
        Deno.loadavg().map((x) => x.toFixed(1)).join(" / ")
      } (2 cores shared with other work); the job's phase times are in its "batch hour succeeded" log line.`,
      `- Target: < 5 s and < 1 GB RSS: ${jobMs < 5000 && peak < 1e9 ? "met" : "NOT met"}.`,
    ];
    const phase = (k: string) => Number(phases[k] ?? 0);
    lines.push(
      `- Job phases: read ${phase("read_ms")} ms, users ${phase("users_ms")} ms, compute ${
        phase("compute_ms")
      } ms, write ${phase("write_ms")} ms: the write phase is ${
        (100 * phase("write_ms") / jobMs).toFixed(0)
      } % of the job${SPEED ? " (speed windows of the hour in PostgreSQL, reconciled)" : ""}.`,
    );
    if (EVENTS !== 3_600_000 || SPEED) {
      console.log(lines.join("\n"));
      return;
    }
    const section = `Command: \`${COMMAND}\` (PostgreSQL of the local stack, local lake; ${
      new Date().toISOString().slice(0, 10)
    }, ${navigator.hardwareConcurrency} cores; the job runs with the \`start\` task's V8 flags \`${
      startV8Flags().join(" ")
    }\`).\n\n${lines.join("\n")}\n`;
    console.log(section);
    await writeSection(
      new URL("../BENCHMARKS.md", import.meta.url).pathname,
      "Batch layer",
      section,
    );
  } finally {
    await db.close();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  // The job runs inside `start`: measure it with start's V8 flags.
  await reexecWithStartFlags(new URL(import.meta.url));
  await main();
}
