/**
 * `batch.engine: spark`: one hour computed by Spark SQL. The process writes
 * the run's inputs beside the lake under `spark-runs/<run>/` (the
 * `user_metadata` snapshot as Parquet, the script), has Spark run the script
 * (render.ts) over the hour's lake folder, reads the results Spark wrote as
 * Parquet back into the `HourResult` that `computeHour()` gives, and removes
 * the run's files, on failure too. Spark writes nothing else: PostgreSQL is
 * written by the job, in its one transaction, as with the in-process engine.
 *
 * How the script runs is a `SparkRunner`: `spark-sql` here (runner.ts, any
 * `--master`), or a Dataproc batch.
 */
import type { AsyncBuffer } from "hyparquet";
import { parquetReadObjects } from "hyparquet";
import { parquetWriteBuffer } from "hyparquet-writer";
import type { BatchPlan } from "../../config/plan.ts";
import type { Queryable } from "../../db/mod.ts";
import { quotaBreaches } from "../../core/quota.ts";
import { hourPath, listHour, type ObjectStore } from "../../lake/mod.ts";
import { computeHour, type HourResult, type UserMeta } from "../compute.ts";
import type { HourComputation, HourEngine, HourInput } from "../engine.ts";
import { UnknownDevicesError } from "../errors.ts";
import { SparkRunError } from "./errors.ts";
import { removeRunFiles, RUNS_PREFIX, sweepDeadRuns } from "./sweep.ts";
import { renderHourScript, RESULT, ROWS, type ScriptVariables } from "./render.ts";

/** One script run on Spark. */
export interface SparkJob {
  /** Unique per run: names the run's files, and a Dataproc batch. */
  readonly runKey: string;
  /** The script's text (render.ts). */
  readonly script: string;
  /** Its location beside the lake (`gs://…` or `file://…`), for runners that read it there. */
  readonly scriptUri: string;
  readonly variables: ScriptVariables;
  /** Whether the lake is on `gs://` (the GCS connector is needed). */
  readonly gcs: boolean;
  /** For runners that run it elsewhere: records where (a console page), once known. */
  readonly onConsoleUrl?: (url: string) => Promise<void>;
}

/** What a runner may say about a finished run. */
export interface SparkRunStats {
  /** Time of the statement that computes and writes the hour (start-up apart), ms. */
  readonly queryMs?: number;
}

/** Runs a script to its end; throws `SparkRunError` with the engine's message when it fails. */
export type SparkRunner = (job: SparkJob) => Promise<SparkRunStats | void>;

/** The lake root as Spark names it: `file:///abs/dir` or `gs://bucket/prefix`. */
function lakeUri(store: ObjectStore): string {
  return store.uri.replace(/\/+$/, "");
}

/** The `user_metadata` snapshot as Parquet: id, email, name (strings), quota (INT64). */
export function usersParquet(users: ReadonlyMap<string, UserMeta>): Uint8Array {
  const ids = [...users.keys()];
  const metas = [...users.values()];
  const buffer = parquetWriteBuffer({
    columnData: [
      { name: "id", data: ids, type: "STRING", nullable: false },
      { name: "email", data: metas.map((u) => u.email), type: "STRING", nullable: false },
      { name: "name", data: metas.map((u) => u.name), type: "STRING", nullable: false },
      {
        name: "quota",
        data: BigInt64Array.from(metas, (u) => BigInt(u.quota)),
        type: "INT64",
        nullable: false,
      },
    ],
  });
  return new Uint8Array(buffer);
}

function storeBuffer(bytes: Uint8Array): AsyncBuffer {
  return {
    byteLength: bytes.byteLength,
    slice: (start, end) => bytes.slice(start, end).buffer as ArrayBuffer,
  };
}

/** Every row of one result folder (Spark's `part-*.parquet` files; none = no rows). */
async function readResult(
  store: ObjectStore,
  folder: string,
): Promise<Record<string, unknown>[]> {
  const files = (await store.list(folder + "/")).filter((e) => {
    const name = e.key.slice(e.key.lastIndexOf("/") + 1);
    return name.startsWith("part-") && name.endsWith(".parquet");
  });
  const out: Record<string, unknown>[] = [];
  for (const f of files) {
    const file = storeBuffer(await store.get(f.key));
    out.push(...await parquetReadObjects({ file }) as Record<string, unknown>[]);
  }
  return out;
}

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));

/** The results of one run, as `computeHour()` would have returned them. */
export async function readResults(
  store: ObjectStore,
  out: string,
  batch: BatchPlan,
): Promise<{ result: HourResult; rowsRead: number }> {
  const metrics = new Map<string, Map<string, number>>(
    batch.metrics.map((m) => [m.name, new Map()]),
  );
  const usageByEmail = new Map<string, number>();
  const quotaByEmail = new Map<string, number>();
  const breachUsage = new Map<string, number>();
  const breachQuota = new Map<string, number>();
  const stats = new Map<string, number>();
  const unknownSample: string[] = [];
  const dropped = new Map<string, number>();
  for (const r of await readResult(store, `${out}/${RESULT}`)) {
    const item = String(r.item);
    const key = String(r.group_key);
    switch (r.result) {
      case ROWS.metric:
        metrics.get(item)?.set(key, num(r.value));
        break;
      case ROWS.email:
        quotaByEmail.set(key, num(r.quota));
        if (r.value !== null && r.value !== undefined) usageByEmail.set(key, num(r.value));
        break;
      case ROWS.breach:
        breachUsage.set(key, num(r.value));
        breachQuota.set(key, num(r.quota));
        break;
      case ROWS.stat:
        stats.set(item, num(r.value));
        break;
      case ROWS.unknown:
        unknownSample.push(key);
        break;
      case ROWS.dropped:
        dropped.set(item, num(r.value));
        break;
    }
  }
  if (!stats.has("rows_read")) {
    throw new SparkRunError(`Spark's result under ${out} has no run statistics`);
  }
  const rowsRead = stats.get("rows_read")!;
  const unknownDevices = stats.get("unknown_devices") ?? 0;
  const unknownRows = stats.get("unknown_rows") ?? 0;
  const dropping = batch.unknownDevice.policy === "drop" && unknownDevices > 0;
  return {
    rowsRead,
    result: {
      metrics,
      // Spark judged the breaches; quotaBreaches() only puts them in the core's order.
      breaches: quotaBreaches(breachUsage, breachQuota),
      unknownDevices,
      unknownRows,
      unknownSample: unknownSample.sort(),
      rowsUsed: rowsRead - (dropping ? unknownRows : 0),
      droppedValues: dropping ? dropped : new Map(),
      usageByEmail,
      quotaByEmail,
    },
  };
}

/** Removes every file of a run; what cannot be removed is logged, never thrown. */
async function removeRun(input: HourInput, prefix: string): Promise<void> {
  try {
    await removeRunFiles(input.store, input.plan.lake, prefix);
  } catch (err) {
    input.log.warn("could not remove a Spark run's files", { prefix, error: err });
  }
}

export interface SparkEngineOptions {
  readonly runner: SparkRunner;
  /** batch_runs' database: each run first removes the files of runs that died (sweep.ts). */
  readonly db?: Queryable;
}

/** The Spark engine: `computeHour` of one hour through `runner`. */
export function sparkEngine(options: SparkEngineOptions): HourEngine {
  return {
    name: "spark",
    async computeHour(input: HourInput): Promise<HourComputation> {
      const { plan, store, hour, users, dropped } = input;
      const files = await listHour(store, hour);
      input.onRead?.({ files: files.length });
      if (files.length === 0) {
        // Nothing for Spark to read: an empty hour is the core's, at no JVM start.
        const result = computeHour(plan.batch, {}, 0, users, dropped);
        return { result, rowsRead: 0, filesRead: 0, missing: true };
      }
      // Run ids are unique: a retry never meets a dead run's files, and a
      // Dataproc re-submission of the same run finds its batch (dataproc.ts).
      const runKey = `run-${input.runId}`;
      const prefix = `${RUNS_PREFIX}${runKey}/`;
      if (options.db) {
        await sweepDeadRuns(store, plan.lake, options.db, input.log, input.runId);
      }
      const root = lakeUri(store);
      const script = renderHourScript(plan.batch, dropped);
      const variables: ScriptVariables = {
        hour_dir: `${root}/${hourPath(hour).replace(/\/$/, "")}`,
        users: `${root}/${prefix}users.parquet`,
        out: `${root}/${prefix}out`,
      };
      try {
        await store.put(`${prefix}users.parquet`, usersParquet(users));
        await store.put(`${prefix}hour.sql`, new TextEncoder().encode(script));
        const started = performance.now();
        const stats = await options.runner({
          runKey,
          script,
          scriptUri: `${root}/${prefix}hour.sql`,
          variables,
          gcs: plan.lake.kind === "gcs",
          onConsoleUrl: input.onConsoleUrl,
        });
        // Start-up apart from the query: what to look at when a run is slow.
        input.log.info("spark run finished", {
          run_key: runKey,
          total_ms: Math.round(performance.now() - started),
          ...(stats?.queryMs !== undefined ? { query_ms: stats.queryMs } : {}),
        });
        const { result, rowsRead } = await readResults(store, `${prefix}out`, plan.batch);
        input.onRead?.({ files: files.length, rows: rowsRead });
        if (plan.batch.unknownDevice.policy === "fail" && result.unknownDevices > 0) {
          throw new UnknownDevicesError(
            result.unknownDevices,
            result.unknownRows,
            result.unknownSample.slice(0, 3),
          );
        }
        return { result, rowsRead, filesRead: files.length, missing: false };
      } finally {
        await removeRun(input, prefix);
      }
    },
  };
}
