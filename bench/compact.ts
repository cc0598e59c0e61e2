/**
 * Measures lake compaction of one full partition-hour: writes ~1.2 M events of
 * one Kafka partition (100,000 devices, 2,000 antennas, 8 apps) as 25 files
 * of ~48,000 rows, like the speed layer's segments (50,000-row roll), then
 * compacts them in a fresh process per run and reports wall time, peak RSS,
 * the output's size and row groups, and the time `readHour` (the batch layer's
 * read) takes over the output in another fresh process. Each run has the V8 flags of the `start` task,
 * where compaction runs. Two inputs: the usual disjoint files, and the same
 * files beside the compacted output (a crash between the put and the
 * deletes), which only the deduplicating merge handles. Three approaches:
 * `compactHour`'s copy of the inputs' row groups (what it does with the
 * disjoint files), its streaming merge (forced on the disjoint files; what it
 * does with the replayed ones), and the whole-hour decode the merge replaced,
 * kept below as the baseline.
 *
 * Peak RSS is the child's own high-water mark (VmHWM; sampled where there is
 * no /proc), so it includes the synchronous encodes a poll would miss.
 * `--row-group-size` and `--slice-rows` apply to the merge runs only.
 *
 *   ./deno task bench:compact [--rows=1200000] [--files=25] [--runs=1]
 *     [--row-group-size=1000000] [--slice-rows=262144]
 */
import { parseArgs } from "node:util";
import { parquetMetadata } from "hyparquet";
import { markdownTable, mb, sampleRss } from "./_util.ts";
import {
  allocColumns,
  compactHour,
  type CompactOptions,
  encodeColumns,
  type EventColumns,
  hourPath,
  LAKE_COLUMNS,
  listHour,
  LocalStore,
  type ObjectStore,
  readHour,
  segmentFileName,
} from "../src/lake/mod.ts";
import { createRandom } from "../src/simulator/mod.ts";

const H = Date.UTC(2026, 10, 28, 10);
const PARTITION = 0;
const V8_FLAGS = "--v8-flags=--heap-growing-percent=20,--max-semi-space-size=8";

type Approach = "copy" | "merge" | "whole-hour";

interface RunReport {
  ms: number;
  peakRss: number;
  startRss: number;
  rows: number;
  outputBytes: number;
  rowGroups: number;
}

/**
 * The compactHour the streaming merge replaced: every input decoded into one
 * set of columns (the lake's `readHour`, one file at a time, deduplicating
 * overlapping files), then one `encodeColumns`. For hours of one partition.
 */
async function compactWholeHour(store: ObjectStore, hourStartMs: number, partition: number) {
  const files = await listHour(store, hourStartMs);
  if (files.some((f) => f.partition !== partition)) {
    throw new RangeError(`The whole-hour baseline compacts hours of partition ${partition} only`);
  }
  if (files.length <= 1) return { inputs: 0 };
  const hour = await readHour(store, hourStartMs, LAKE_COLUMNS, { concurrency: 1 });
  const first = Math.min(...files.map((f) => f.firstOffset));
  const last = Math.max(...files.map((f) => f.lastOffset));
  const output = hourPath(hourStartMs) + segmentFileName(partition, first, last);
  await store.put(output, encodeColumns(hour.columns as EventColumns, hour.rows));
  for (const f of files) if (f.key !== output) await store.delete(f.key);
  return { inputs: files.length, output, rows: hour.rows };
}

/** The process's peak RSS from the OS, or undefined without /proc. */
function highWaterMark(): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Child process: one compaction, its report as JSON on stdout. */
async function child(approach: Approach, dir: string, options: CompactOptions) {
  const store = new LocalStore(dir);
  const startRss = Deno.memoryUsage().rss;
  const rss = sampleRss(10);
  const t0 = performance.now();
  const r = approach === "whole-hour"
    ? await compactWholeHour(store, H, PARTITION)
    : await compactHour(store, H, PARTITION, {
      ...options,
      // Above any average: the merge whatever the inputs.
      copyMinAverageRows: approach === "merge" ? Infinity : undefined,
    });
  const ms = performance.now() - t0;
  const peakRss = highWaterMark() ?? rss.stop();
  rss.stop();
  const out = await store.size(r.output!);
  const bytes = await store.get(r.output!);
  const rowGroups = parquetMetadata(bytes.slice().buffer).row_groups.length;
  const report: RunReport = { ms, peakRss, startRss, rows: r.rows!, outputBytes: out, rowGroups };
  console.log(JSON.stringify(report));
}

/** Writes `rows` events of one partition-hour as `files` lake files. */
async function writeHour(store: ObjectStore, rows: number, files: number) {
  const devices = Array.from({ length: 100_000 }, () => crypto.randomUUID());
  const antennas = Array.from({ length: 2_000 }, () => crypto.randomUUID());
  const apps = ["video", "music", "social", "maps", "mail", "web", "games", "news"];
  const rnd = createRandom(42).next;
  const per = Math.ceil(rows / files);
  for (let from = 0; from < rows; from += per) {
    const n = Math.min(per, rows - from);
    const c = allocColumns(n);
    for (let i = 0; i < n; i++) {
      const offset = from + i;
      c.timestamp[i] = Math.floor((H + (offset * 3_600_000) / rows) / 1000) * 1000;
      c.id[i] = devices[Math.floor(rnd() * devices.length)];
      c.antenna_id[i] = antennas[Math.floor(rnd() * antennas.length)];
      c.app[i] = apps[Math.floor(rnd() * apps.length)];
      c.bytes[i] = Math.floor(Math.exp(rnd() * 16));
      c.partition[i] = PARTITION;
      c.offset[i] = offset;
    }
    const key = hourPath(H) + segmentFileName(PARTITION, from, from + n - 1);
    await store.put(key, encodeColumns(c, n));
  }
}

async function copyDir(from: string, to: string) {
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) {
      await Deno.mkdir(`${to}/${e.name}`, { recursive: true });
      await copyDir(`${from}/${e.name}`, `${to}/${e.name}`);
    } else {
      await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
    }
  }
}

/** Runs this script with `args` in a fresh process, returning its JSON report. */
async function spawn(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", V8_FLAGS, import.meta.filename!, ...args],
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`${args.join(" ")} failed (exit ${out.code})`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** Child process: reads the compacted hour as the batch layer does, its time as JSON. */
async function readChild(dir: string) {
  const t0 = performance.now();
  const h = await readHour(new LocalStore(dir), H);
  console.log(JSON.stringify({ ms: performance.now() - t0, rows: h.rows }));
}

async function run(
  approach: Approach,
  lake: string,
  options: string[],
): Promise<RunReport & { readMs: number }> {
  const dir = await Deno.makeTempDir({ prefix: "compact_run_" });
  try {
    await copyDir(lake, dir);
    const report: RunReport = await spawn(["--child", approach, dir, ...options]);
    // The output's cost to the batch layer, in another fresh process.
    const read: { ms: number; rows: number } = await spawn(["--read", dir]);
    if (read.rows !== report.rows) throw new Error(`read ${read.rows} rows, not ${report.rows}`);
    return { ...report, readMs: read.ms };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function main() {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rows: { type: "string", default: "1200000" },
      files: { type: "string", default: "25" },
      runs: { type: "string", default: "1" },
      "row-group-size": { type: "string" },
      "slice-rows": { type: "string" },
    },
  });
  const childOptions = [values["row-group-size"] ?? "", values["slice-rows"] ?? ""];
  const rows = Number(values.rows), files = Number(values.files), runs = Number(values.runs);
  const disjoint = await Deno.makeTempDir({ prefix: "compact_lake_" });
  const replayed = await Deno.makeTempDir({ prefix: "compact_lake_" });
  try {
    const store = new LocalStore(disjoint);
    await writeHour(store, rows, files);
    const inputs = await store.list("");
    const inputBytes = inputs.reduce((n, e) => n + e.size, 0);
    console.log(
      `${rows} rows in ${inputs.length} files, ${(inputBytes / 1e6).toFixed(1)} MB`,
    );
    // The crash case: the compacted file beside all its inputs.
    await copyDir(disjoint, replayed);
    const scratch = await Deno.makeTempDir({ prefix: "compact_lake_" });
    await copyDir(disjoint, scratch);
    const done = await compactHour(new LocalStore(scratch), H, PARTITION);
    await Deno.copyFile(`${scratch}/${done.output}`, `${replayed}/${done.output}`);
    await Deno.remove(scratch, { recursive: true });

    const table: string[][] = [];
    const plan = [
      ["disjoint", disjoint, ["whole-hour", "merge", "copy"]],
      // Overlapping inputs cannot be copied: compactHour merges them.
      ["replayed", replayed, ["whole-hour", "merge"]],
    ] as const;
    for (const [input, lake, approaches] of plan) {
      for (const approach of approaches) {
        for (let i = 0; i < runs; i++) {
          const r = await run(approach, lake, childOptions);
          if (r.rows !== rows) throw new Error(`${approach} kept ${r.rows} rows, not ${rows}`);
          table.push([
            input,
            approach,
            (r.ms / 1000).toFixed(2),
            mb(r.peakRss),
            mb(r.peakRss - r.startRss),
            (r.outputBytes / 1e6).toFixed(1),
            String(r.rowGroups),
            (r.readMs / 1000).toFixed(2),
          ]);
          console.log(table.at(-1)!.join("  "));
        }
      }
    }
    // compactHour's output (a copy) reads back as the hour.
    const check = await Deno.makeTempDir({ prefix: "compact_lake_" });
    await copyDir(disjoint, check);
    await compactHour(new LocalStore(check), H, PARTITION);
    const h = await readHour(new LocalStore(check), H, ["offset"]);
    await Deno.remove(check, { recursive: true });
    if (h.rows !== rows) throw new Error(`read back ${h.rows} rows, not ${rows}`);

    console.log(
      `\n${rows} rows, ${inputs.length} input files (${(inputBytes / 1e6).toFixed(1)} MB)\n`,
    );
    console.log(markdownTable(
      [
        "inputs",
        "approach",
        "wall s",
        "peak RSS MB",
        "RSS growth MB",
        "output MB",
        "row groups",
        "read s",
      ],
      table,
    ));
  } finally {
    await Deno.remove(disjoint, { recursive: true });
    await Deno.remove(replayed, { recursive: true });
  }
}

if (Deno.args[0] === "--child") {
  const [, approach, dir, rowGroupSize, sliceRows] = Deno.args;
  await child(approach as Approach, dir, {
    rowGroupSize: rowGroupSize ? Number(rowGroupSize) : undefined,
    sliceRows: sliceRows ? Number(sliceRows) : undefined,
  });
} else if (Deno.args[0] === "--read") await readChild(Deno.args[1]);
else await main();
