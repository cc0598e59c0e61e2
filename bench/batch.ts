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
 * phase times are then printed. `--spark` also computes the hour with the
 * Spark engine (`batch.engine: spark`) on `local[2]` and on the standalone
 * cluster of `deno task stack up spark`, Spark's start-up reported apart from
 * the query (printed). `--duckdb` also times raw DuckDB (PyPI, pinned, in a
 * venv under `.state/duckdb/`, as many threads as the machine has cores) on
 * the same files doing only read + dedupe + the three group-bys
 * (bench/duckdb_hour.py), the single-machine anchor of the job's read +
 * compute phases, beside the in-process engine timed the same way (in a
 * process of its own with `start`'s V8 flags: users loaded first, three runs
 * of the lake read and `computeHour`, the median), printed. Any option leaves
 * BENCHMARKS.md alone.
 */
import postgres from "postgres";
import { parquetRead } from "hyparquet";
import { stackUp } from "../src/stack/mod.ts";
import { migrate, openDb } from "../src/db/mod.ts";
import { hourPath, listHour, openStore, readHour } from "../src/lake/mod.ts";
import { createBatchRunner } from "../src/batch/mod.ts";
import { generateHour, insertUsers, testPlan, writeLakeHour } from "../tests/_support/batch.ts";
import { insertSpeedRows, speedRowsOf } from "../tests/_support/api.ts";
import { DEFAULT_APPS, deviceId } from "../src/simulator/mod.ts";
import { createLogger, type Logger } from "../src/log.ts";
import { engineFor } from "../src/batch/spark/mod.ts";
import { loadUsers } from "../src/batch/users.ts";
import { computeHour, neededColumns } from "../src/batch/compute.ts";
import { reconciledSpeedMetrics } from "../src/batch/catalog.ts";
import type { Plan } from "../src/config/plan.ts";
import type { Db } from "../src/db/mod.ts";
import type { ObjectStore } from "../src/lake/mod.ts";
import { reexecWithStartFlags, startV8Flags, writeSection } from "./_util.ts";

const H = Date.UTC(2026, 10, 28, 10);
const flag = (name: string) => Deno.args.indexOf(name);
const EVENTS = flag("--events") >= 0 ? Number(Deno.args[flag("--events") + 1]) : 3_600_000;
/** Write the hour's speed windows too (the reconciliation's input), report phases, keep BENCHMARKS.md. */
const SPEED = flag("--speed") >= 0;
/** Also time the Spark engine on local[2] and the cluster (printed, not recorded). */
const SPARK = flag("--spark") >= 0;
/** Also time raw DuckDB on the same files (printed, not recorded). */
const DUCKDB = flag("--duckdb") >= 0;
/** DuckDB's runs: the first reads the files cold from the page cache's point of view too. */
const DUCKDB_RUNS = 3;
const DUCKDB_VERSION = "2.0.0";
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

/** The Spark engine on `master` for the bench's hour: rows, whole run and query times. */
async function sparkHour(plan: Plan, store: ObjectStore, db: Db, master: string) {
  const spark: Plan = {
    ...plan,
    batch: { ...plan.batch, engine: "spark", spark: { ...plan.batch.spark, master } },
  };
  const seen: Record<string, unknown> = {};
  const base = createLogger({ bench: "batch" });
  const log: Logger = {
    ...base,
    info(msg, fields) {
      if (msg === "spark run finished") Object.assign(seen, fields);
      base.info(msg, fields);
    },
  };
  const t = performance.now();
  const out = await engineFor(spark)!.computeHour({
    plan: spark,
    store,
    hour: H,
    runId: `bench-${master.replace(/\W+/g, "-")}`,
    users: await loadUsers(db),
    dropped: reconciledSpeedMetrics(spark),
    log,
  });
  return {
    master,
    rows: out.rowsRead,
    totalMs: performance.now() - t,
    queryMs: Number(seen.query_ms ?? NaN),
  };
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * The in-process engine timed as DuckDB is: in a process of its own (with the
 * `start` task's V8 flags, as the job runs), users loaded first (untimed),
 * then `runs` times the lake read as the job does it and the hour's
 * computation. Prints `{ read, compute }[]` (ms) as JSON.
 */
async function engineRunsChild(dir: string, dbUrl: string, runs: number): Promise<void> {
  const plan = testPlan({ lakeUri: `file://${dir}` });
  const store = openStore(plan.lake);
  const db = await openDb({ url: dbUrl, maxConnections: 1 });
  const users = await loadUsers(db);
  await db.close();
  const columns = neededColumns(plan.batch);
  const out: { read: number; compute: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const h = await readHour(store, H, columns, { strings: "dictionary" });
    const read = performance.now() - t;
    const c = computeHour(plan.batch, h.columns, h.rows, users);
    out.push({ read, compute: performance.now() - t - read });
    if (c.rowsUsed !== EVENTS) throw new Error(`computeHour used ${c.rowsUsed} rows`);
  }
  console.log(JSON.stringify(out));
}

async function engineRuns(dir: string, dbUrl: string, runs: number) {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...startV8Flags(),
      import.meta.filename!,
      "--engine-runs",
      dir,
      dbUrl,
      String(runs),
      "--events",
      String(EVENTS),
    ],
    env: { BENCH_START_FLAGS: "1" },
    stderr: "inherit",
  }).output();
  if (!r.success) throw new Error("the engine runs' process failed");
  return JSON.parse(new TextDecoder().decode(r.stdout)) as { read: number; compute: number }[];
}

/**
 * The same files and columns through plain hyparquet (nothing else), then the
 * lake's reader alone, with strings as arrays and as the job reads them
 * (dictionary codes): times and row counts.
 */
async function readBaselines(
  dir: string,
  store: ObjectStore,
  files: readonly { key: string }[],
  columns: string[],
) {
  let t = performance.now();
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
  t = performance.now();
  const readRows = (await readHour(store, H, columns)).rows;
  const readMs = performance.now() - t;
  t = performance.now();
  const codedRows = (await readHour(store, H, columns, { strings: "dictionary" })).rows;
  const codedMs = performance.now() - t;
  return { baseMs, readMs, codedMs, rows: [baseRows, readRows, codedRows] };
}

/** The recorded lines of a run: workload, job, baselines, load, target, phases. */
function summaryLines(
  { writeMs, files, s, jobMs, peak, reads, columns, phase }: {
    writeMs: number;
    files: number;
    s: { rowsWritten: number; breaches: number };
    jobMs: number;
    peak: number;
    reads: { baseMs: number; readMs: number; codedMs: number };
    columns: readonly string[];
    phase: (k: string) => number;
  },
): string[] {
  const lines = [
    `- Workload: ${EVENTS.toLocaleString("en-US")} events in one hour (1,000 events/s), ${
      DEVICES.toLocaleString("en-US")
    } devices with user metadata (50,000 emails), 500 antennas, ${APPS.length} apps; ${files} Parquet files (3 partitions × 5 segments); lake written in ${
      (writeMs / 1000).toFixed(1)
    } s.`,
    `- Batch job, end to end (read, join, 3 metrics + quota, write ${
      s.rowsWritten.toLocaleString("en-US")
    } rows and ${s.breaches.toLocaleString("en-US")} breaches in one transaction): **${
      (jobMs / 1000).toFixed(2)
    } s, ${rate(EVENTS, jobMs)}**, peak RSS **${mb(peak)}** (process, during the job).`,
    `- Baseline, plain hyparquet read of the same files and columns (${
      columns.join(", ")
    }), no aggregation: ${(reads.baseMs / 1000).toFixed(2)} s, ${rate(EVENTS, reads.baseMs)}.`,
    `- Lake \`readHour\` alone (same columns, into typed arrays): ${
      (reads.readMs / 1000).toFixed(2)
    } s, ${rate(EVENTS, reads.readMs)}; with \`strings: "dictionary"\` (codes, as the job reads): ${
      (reads.codedMs / 1000).toFixed(2)
    } s, ${rate(EVENTS, reads.codedMs)}.`,
    `- Job / baseline: ${
      (jobMs / reads.baseMs).toFixed(1)
    }× (the load-independent figure on a shared machine: compare runs by it).`,
    `- Machine load average during the run: ${
      Deno.loadavg().map((x) => x.toFixed(1)).join(" / ")
    } (2 cores shared with other work); the job's phase times are in its "batch hour succeeded" log line.`,
    `- Target: < 5 s and < 1 GB RSS: ${jobMs < 5000 && peak < 1e9 ? "met" : "NOT met"}.`,
  ];
  lines.push(
    `- Job phases: read ${phase("read_ms")} ms, users ${phase("users_ms")} ms, compute ${
      phase("compute_ms")
    } ms, write ${phase("write_ms")} ms: the write phase is ${
      (100 * phase("write_ms") / jobMs).toFixed(0)
    } % of the job${SPEED ? " (speed windows of the hour in PostgreSQL, reconciled)" : ""}.`,
  );
  return lines;
}

/** The hour's lake (by a child process), the users and, with `--speed`, the speed windows. */
async function setUp(dir: string, db: Db) {
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
  const users = Array.from({ length: DEVICES }, (_, i) => ({
    id: deviceId(i),
    name: `User ${i >> 1}`,
    email: `user${i >> 1}@example.com`,
    quota: 3_000_000 + (i % 7) * 200_000, // some users over quota
  }));
  await insertUsers(db, users);
  const plan = testPlan({ lakeUri: `file://${dir}` });
  const store = openStore(plan.lake);
  const files = await listHour(store, H);
  if (SPEED) {
    t = performance.now();
    const rows = speedRowsOf(hourColumns());
    await insertSpeedRows(db, plan, rows);
    await db.exec("VACUUM ANALYZE");
    // The set-up's dirty pages written now, not during the job's write phase.
    await db.exec("CHECKPOINT");
    console.error(
      `speed windows of the hour written through the sink: ${rows.length} partial rows in ${
        ((performance.now() - t) / 1000).toFixed(1)
      } s`,
    );
  }

  return { writeMs, users, plan, store, files };
}

/** The batch job of the hour, end to end: its summary, time, peak RSS and phase times. */
async function timedJob(plan: Plan, db: Db, store: ObjectStore) {
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
  const t = performance.now();
  const s = await runner.runHour(H, "manual");
  const jobMs = performance.now() - t;
  return { s, jobMs, peak: rss.stop(), phases };
}

/** The Spark engine on `local[2]` and on the cluster (`--spark`), query apart from the rest. */
async function sparkLinesOf(plan: Plan, store: ObjectStore, db: Db): Promise<string[]> {
  await stackUp(["spark"]);
  const out: string[] = [];
  for (const master of ["local[2]", "spark://127.0.0.1:7077"]) {
    const r = await sparkHour(plan, store, db, master);
    if (r.rows !== EVENTS) throw new Error(`Spark on ${master} read ${r.rows} rows`);
    out.push(
      `- Spark engine on \`${master}\`: ${
        (r.totalMs / 1000).toFixed(1)
      } s in all, of which the query ${
        (r.queryMs / 1000).toFixed(1)
      } s (start-up, inputs and read-back ${((r.totalMs - r.queryMs) / 1000).toFixed(1)} s).`,
    );
  }
  return out;
}

/** The DuckDB anchor beside the in-process engine timed the same way (`--duckdb`). */
async function duckdbLines(
  dir: string,
  users: readonly { id: string; email: string }[],
  dbUrl: string,
  /** The job's own read + compute phases. */
  job: number,
): Promise<string[]> {
  const d = await duckdbHour(dir, users);
  if (d.rows !== EVENTS || new Set(d.bytes).size !== 1) {
    throw new Error(`DuckDB kept ${d.rows} rows after dedupe, metric totals ${d.bytes}`);
  }
  const ms = d.seconds.map((x) => x * 1000);
  const engine = await engineRuns(dir, dbUrl, DUCKDB_RUNS);
  const sums = engine.map((r) => r.read + r.compute);
  return [
    `- Raw DuckDB ${d.version} (threads ${d.threads}), read + dedupe on (partition, offset) + the three group-bys (email through the users join), ${
      d.rows.toLocaleString("en-US")
    } rows, groups ${
      Object.entries(d.groups).map(([k, v]) => `${k} ${v.toLocaleString("en-US")}`).join(", ")
    }: runs ${ms.map((x) => x.toFixed(0)).join(" / ")} ms, median ${median(ms).toFixed(0)} ms.`,
    `- In-process engine alone, as DuckDB is timed (a process of its own with \`start\`'s V8 flags, users loaded beforehand, ${DUCKDB_RUNS} runs in it: the lake's \`readHour\` as the job reads, then \`computeHour\`: 3 metrics, usage and quota): runs ${
      engine.map((r) => `${r.read.toFixed(0)} + ${r.compute.toFixed(0)}`).join(" / ")
    } ms, median ${median(sums).toFixed(0)} ms: **${
      (median(sums) / median(ms)).toFixed(2)
    }× DuckDB's median** (target ≤ 1.5×: ${median(sums) <= 1.5 * median(ms) ? "met" : "NOT met"}).`,
    `- The job's own first run above, read + compute ${job} ms (its read phase shares the thread with its concurrent users load; JIT cold): ${
      (job / median(ms)).toFixed(2)
    }× DuckDB's median, ${(job / ms[0]).toFixed(2)}× DuckDB's first run.`,
  ];
}

/** A venv with the pinned DuckDB under `.state/duckdb/`, made on first use; its python. */
async function duckdbPython(): Promise<string> {
  const venv = new URL("../.state/duckdb/venv", import.meta.url).pathname;
  const python = `${venv}/bin/python`;
  const has = await new Deno.Command(python, {
    args: ["-c", "import duckdb, sys; sys.exit(duckdb.__version__ != sys.argv[1])", DUCKDB_VERSION],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => ({ success: false }));
  if (has.success) return python;
  for (
    const [cmd, args] of [
      ["python3", ["-m", "venv", venv]],
      [`${venv}/bin/pip`, ["install", "-q", `duckdb==${DUCKDB_VERSION}`]],
    ] as const
  ) {
    const r = await new Deno.Command(cmd, {
      args: [...args],
      env: { PIP_NO_INPUT: "1", PIP_DISABLE_PIP_VERSION_CHECK: "1" },
    }).output();
    if (!r.success) {
      throw new Error(
        `${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(r.stderr).trim()}`,
      );
    }
  }
  return python;
}

interface DuckdbResult {
  version: string;
  threads: number;
  rows: number;
  groups: Record<string, number>;
  bytes: number[];
  seconds: number[];
}

/** Raw DuckDB on the hour's files (bench/duckdb_hour.py), users from the bench's own list. */
async function duckdbHour(dir: string, users: readonly { id: string; email: string }[]) {
  const python = await duckdbPython();
  const csv = `${dir}/users.csv`;
  await Deno.writeTextFile(csv, ["id,email", ...users.map((u) => `${u.id},${u.email}`)].join("\n"));
  const r = await new Deno.Command(python, {
    args: [
      new URL("./duckdb_hour.py", import.meta.url).pathname,
      `${dir}/${hourPath(H)}`,
      csv,
      String(navigator.hardwareConcurrency),
      String(DUCKDB_RUNS),
    ],
  }).output();
  await Deno.remove(csv);
  if (!r.success) {
    throw new Error(`duckdb_hour.py failed: ${new TextDecoder().decode(r.stderr).trim()}`);
  }
  return JSON.parse(new TextDecoder().decode(r.stdout)) as DuckdbResult;
}

async function main() {
  if (Deno.args[0] === "--write-lake") return await writeLake(Deno.args[1]);
  if (Deno.args[0] === "--engine-runs") {
    return await engineRunsChild(Deno.args[1], Deno.args[2], Number(Deno.args[3]));
  }

  const info = await stackUp(["postgres"]);
  const dbName = `bench_batch_${crypto.randomUUID().slice(0, 8)}`;
  const admin = postgres(info.pgUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${dbName}`);
  const url = new URL(info.pgUrl);
  url.pathname = `/${dbName}`;
  const dir = await Deno.makeTempDir({ prefix: "bench_batch_lake_" });
  const db = await openDb({ url: url.toString(), maxConnections: 4 });
  try {
    const { writeMs, users, plan, store, files } = await setUp(dir, db);
    const columns = ["id", "antenna_id", "app", "bytes"];
    const reads = await readBaselines(dir, store, files, columns);
    const { s, jobMs, peak, phases } = await timedJob(plan, db, store);
    if (s.status !== "succeeded") throw new Error(`batch run failed: ${s.error}`);
    if (s.rowsRead !== EVENTS || reads.rows.some((n) => n !== EVENTS)) {
      throw new Error(`row counts differ: job ${s.rowsRead}, baseline and reader ${reads.rows}`);
    }

    const phase = (k: string) => Number(phases[k] ?? 0);
    const duckLines = DUCKDB
      ? await duckdbLines(dir, users, url.toString(), phase("read_ms") + phase("compute_ms"))
      : [];

    const sparkLines = SPARK ? await sparkLinesOf(plan, store, db) : [];

    const lines = summaryLines({
      writeMs,
      files: files.length,
      s,
      jobMs,
      peak,
      reads,
      columns,
      phase,
    });
    if (EVENTS !== 3_600_000 || SPEED || SPARK || DUCKDB) {
      console.log([...lines, ...duckLines, ...sparkLines].join("\n"));
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
