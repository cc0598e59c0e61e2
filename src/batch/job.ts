/**
 * One hour's batch job, end to end: read exactly the hour's lake partition
 * (only the columns the plan needs), join user metadata, compute every batch
 * metric, the quota breaches and the devices without metadata with the pure
 * core, then write it all in one transaction. The caller has already claimed
 * the hour (a `running` row in batch_runs); the job keeps that lease alive
 * while it works and records the outcome, success or failure, on the run.
 */
import type { MetricPlan, Plan } from "../config/plan.ts";
import type { Db } from "../db/db.ts";
import { type ObjectStore, StoreError } from "../lake/mod.ts";
import { hourComplete } from "../core/completeness.ts";
import { HOUR_MS } from "../core/window.ts";
import type { Logger } from "../log.ts";
import { reconciledSpeedMetrics } from "./catalog.ts";
import { computeHour, type HourColumns, type HourResult, neededColumns } from "./compute.ts";
import type { HourEngine } from "./engine.ts";
import { HourTooLargeError, UnknownDevicesError } from "./errors.ts";
import { emptyBefore, recordEmpty } from "./empty_hour.ts";
import { drawLakeSeq, readRule } from "./hour_state.ts";
import { hourLabel } from "./hours.ts";
import { reportUnexplained } from "./reconcile.ts";
import type { HourParticipant } from "./participant.ts";
import {
  markFailed,
  markLakeComplete,
  recordConsoleUrl,
  renewLease,
  type RunStats,
} from "./runs.ts";
import type { BatchTelemetry } from "./telemetry.ts";
import type { RunSummary, Trigger } from "./types.ts";
import { loadUsers } from "./users.ts";
import { writeHour } from "./write.ts";
import { processRowLimit } from "./capacity.ts";

/**
 * What the job needs from the lake: the lake module's `readHour`. The job asks
 * for string columns as dictionaries; a reader may ignore that and return
 * plain arrays.
 */
export type HourReader = (
  store: ObjectStore,
  hourStartMs: number,
  columns?: readonly string[],
  options?: {
    readonly strings?: "array" | "dictionary";
    /** Told the hour's rows and files before its data is read; may throw (lake reader.ts). */
    readonly beforeRead?: (size: { rows: number; files: number }) => void;
  },
) => Promise<
  { rows: number; columns: HourColumns; files: number | readonly unknown[]; missing?: boolean }
>;

export interface JobDeps {
  readonly plan: Plan;
  readonly db: Db;
  readonly store: ObjectStore;
  readonly log: Logger;
  readonly readHour: HourReader;
  readonly clock: () => number;
  /** How long a running run holds the hour without renewing. */
  readonly leaseMs: number;
  readonly telemetry: BatchTelemetry;
  /** Ride along each hour's write (participant.ts). */
  readonly participants?: readonly HourParticipant[];
  /** Where the hour is computed (`batch.engine`); undefined = in this process. */
  readonly engine?: HourEngine;
  /** This machine's memory, bytes: the in-process engine's default row limit (capacity.ts). */
  readonly totalMemory: number;
}

function fileCount(files: number | readonly unknown[]): number {
  return typeof files === "number" ? files : files.length;
}

/** Runs the claimed run `runId` of `hour`; never throws for a failed hour, the summary says so. */
export async function runJob(
  deps: JobDeps,
  hour: number,
  runId: string,
  trigger: Trigger,
): Promise<RunSummary> {
  const started = performance.now();
  const stats: Partial<RunStats> = {};
  // Renew well before expiry so a slow GCS read never looks like a dead process.
  const heartbeat = setInterval(() => {
    renewLease(deps.db, runId, deps.leaseMs).catch((err) =>
      deps.log.warn("batch lease renewal failed", {
        hour: hourLabel(hour),
        run_id: runId,
        error: err,
      })
    );
  }, Math.max(1_000, deps.leaseMs / 3));
  try {
    const phases = new Phases();
    // 1. Read the lake and the users, 2. compute, 3. note what the run saw.
    const computed = await readAndCompute(deps, hour, runId, stats, phases);
    if ("firstData" in computed) {
      return await recordEmpty(deps, {
        hour,
        runId,
        trigger,
        firstData: computed.firstData,
        started,
      });
    }
    const note = hourNote(deps, hour, runId, trigger, computed);
    // 4. Write the hour in one transaction, 5. report what it found.
    const rowsWritten = await writeAndReport(deps, hour, runId, computed, note, phases);
    const { data, result, lakeComplete } = computed;
    const summary: RunSummary = {
      runId,
      hour,
      trigger,
      status: "succeeded",
      rowsRead: data.rows,
      filesRead: data.files,
      rowsWritten,
      breaches: result.breaches.length,
      unknownDevices: result.unknownDevices,
      unknownRows: result.unknownRows,
      durationMs: Math.round(performance.now() - started),
      note,
      lakeComplete,
      consoleUrl: stats.consoleUrl,
    };
    deps.telemetry.runs.inc({ trigger, status: "succeeded" });
    deps.log.info("batch hour succeeded", { ...summaryFields(summary), ...phases.ms });
    return summary;
  } catch (err) {
    return await failRun(deps, hour, runId, trigger, err, stats, started);
  } finally {
    clearInterval(heartbeat);
  }
}

/** Phase times go to the log: they are what to look at when an hour is slow. */
class Phases {
  readonly ms: Record<string, number> = {};
  #mark = performance.now();
  /** Ends phase `name` now and starts the next. */
  lap(name: string): void {
    const now = performance.now();
    this.ms[name] = Math.round(now - this.#mark);
    this.#mark = now;
  }
  /** Times `work` from the current mark without moving it (phases that overlap). */
  async timed<T>(name: string, work: Promise<T>): Promise<T> {
    const from = this.#mark;
    const value = await work;
    this.ms[name] = Math.round(performance.now() - from);
    return value;
  }
  restart(): void {
    this.#mark = performance.now();
  }
}

interface Computed {
  readonly lakeSeq: number;
  readonly lakeComplete: boolean | undefined;
  readonly data: LakeRead;
  readonly result: HourResult;
}

/** What a run read of the lake: rows after deduplication, files, whether the hour had none. */
interface LakeRead {
  readonly rows: number;
  readonly files: number;
  readonly missing?: boolean;
}

/** An hour before any data with nothing in the lake (empty_hour.ts): the first hour with data. */
interface EmptyHour {
  readonly firstData: number;
}

async function readAndCompute(
  deps: JobDeps,
  hour: number,
  runId: string,
  stats: Partial<RunStats>,
  phases: Phases,
): Promise<Computed | EmptyHour> {
  const { plan, db } = deps;
  // The change number first: a lake change stamped after it may be missing
  // from what is read next, and then makes the hour stale.
  const lakeSeq = await drawLakeSeq(db);
  const reconciled = reconciledSpeedMetrics(plan);
  const lakeComplete = await isComplete(deps, hour);
  await markLakeComplete(db, runId, lakeComplete);
  phases.lap("seq_ms");
  const { data, result } = deps.engine
    ? await onEngine(deps, deps.engine, hour, runId, reconciled, phases, stats)
    : await inProcess(deps, hour, reconciled, phases, stats);
  stats.rowsRead = data.rows;
  stats.filesRead = data.files;
  // Nothing in the lake for an hour before any data: empty (empty_hour.ts).
  const firstData = data.rows === 0 && data.files === 0 ? await emptyBefore(deps, hour) : undefined;
  if (firstData !== undefined) return { firstData };
  stats.unknownDevices = result.unknownDevices;
  stats.unknownRows = result.unknownRows;
  if (result.unknownDevices > 0) {
    deps.log.warn("devices without user metadata", {
      hour: hourLabel(hour),
      run_id: runId,
      policy: plan.batch.unknownDevice.policy,
      devices: result.unknownDevices,
      rows: result.unknownRows,
      sample: result.unknownSample,
    });
  }
  return { lakeSeq, lakeComplete, data, result };
}

/**
 * The in-process engine (`batch.engine: process`): the user metadata comes
 * from PostgreSQL while the lake is decoded here (one waits on the database,
 * the other on the CPU), then the pure core computes the hour.
 */
async function inProcess(
  deps: JobDeps,
  hour: number,
  reconciled: readonly MetricPlan[],
  phases: Phases,
  stats: Partial<RunStats>,
): Promise<{ data: LakeRead; result: HourResult }> {
  const [users, read] = await Promise.all([
    phases.timed("users_ms", loadUsers(deps.db)),
    phases.timed(
      "read_ms",
      readWhole(deps, hour, neededColumns(deps.plan.batch, reconciled), (size) => {
        // The files are listed: a run that stops here still says what it found.
        stats.filesRead = size.files;
        const { limit, fromMemory } = processRowLimit(
          deps.plan.batch.processMaxRows,
          deps.totalMemory,
        );
        if (size.rows > limit) throw new HourTooLargeError(size.rows, limit, fromMemory);
      }),
    ),
  ]);
  // A run the `fail` policy stops in computeHour still records what it read.
  stats.rowsRead = read.rows;
  stats.filesRead = fileCount(read.files);
  phases.restart();
  const result = computeHour(deps.plan.batch, read.columns, read.rows, users, reconciled);
  phases.lap("compute_ms");
  return { data: { rows: read.rows, files: fileCount(read.files), missing: read.missing }, result };
}

/** Another engine (`batch.engine: spark`): it reads and computes; the run's users go with it. */
async function onEngine(
  deps: JobDeps,
  engine: HourEngine,
  hour: number,
  runId: string,
  reconciled: readonly MetricPlan[],
  phases: Phases,
  stats: Partial<RunStats>,
): Promise<{ data: LakeRead; result: HourResult }> {
  const users = await phases.timed("users_ms", loadUsers(deps.db));
  phases.restart();
  const c = await engine.computeHour({
    plan: deps.plan,
    store: deps.store,
    hour,
    runId,
    users,
    dropped: reconciled,
    log: deps.log,
    // A link that cannot be recorded costs a person a click, not the run.
    // A run that fails on the engine still records what it read.
    onRead: ({ files, rows }) => {
      stats.filesRead = files;
      if (rows !== undefined) stats.rowsRead = rows;
    },
    onConsoleUrl: (url) => {
      stats.consoleUrl = url;
      return recordConsoleUrl(deps.db, runId, url).catch((err) =>
        deps.log.warn("could not record the run's console link", { run_id: runId, error: err })
      );
    },
  });
  phases.lap(`${engine.name}_ms`);
  return { data: { rows: c.rowsRead, files: c.filesRead, missing: c.missing }, result: c.result };
}

/** The run's note (not an error): what it read was partial, missing or filtered. */
function hourNote(
  deps: JobDeps,
  hour: number,
  runId: string,
  trigger: Trigger,
  { lakeComplete, data, result }: Computed,
): string | undefined {
  const label = hourLabel(hour);
  // An empty past hour is a success, but say the partition was not there:
  // lost lake files and a quiet hour should not look the same.
  let note: string | undefined;
  if (lakeComplete === false) {
    // A run by hand (the scheduler waits): the rest of the hour makes it stale.
    note = "the lake did not hold all of the hour yet: it runs again when the rest arrives";
    deps.log.warn("batch hour read before the lake holds all of it", {
      hour: label,
      run_id: runId,
      trigger,
    });
  }
  if (data.missing || (data.rows === 0 && data.files === 0)) {
    note = [
      note,
      hour + HOUR_MS <= deps.clock()
        ? "no lake partition for this hour (missing)"
        : "no lake partition for this hour yet",
    ].filter(Boolean).join("; ");
    deps.log.warn("lake partition missing", { hour: label, run_id: runId, lake: deps.store.uri });
  }
  if (result.unknownDevices > 0 && deps.plan.batch.unknownDevice.policy === "drop") {
    note = [
      note,
      `${result.unknownRows} rows of ${result.unknownDevices} unknown devices dropped`,
    ]
      .filter(Boolean).join("; ");
  }
  return note;
}

/** Writes the hour with its participants' shares; returns the rows written. */
async function writeAndReport(
  deps: JobDeps,
  hour: number,
  runId: string,
  { lakeSeq, data, result }: Computed,
  note: string | undefined,
  phases: Phases,
): Promise<number> {
  const totals = {
    hour,
    runId,
    usageByEmail: result.usageByEmail,
    quotaByEmail: result.quotaByEmail,
  };
  const writes = (deps.participants ?? []).flatMap((p) => p.take(totals) ?? []);
  const { rowsWritten, unexplained } = await writeHour(
    deps.db,
    deps.plan,
    hour,
    runId,
    result,
    {
      rowsRead: data.rows,
      filesRead: data.files,
      unknownDevices: result.unknownDevices,
      unknownRows: result.unknownRows,
      note,
    },
    lakeSeq,
    writes,
  );
  for (const w of writes) w.committed?.();
  phases.lap("write_ms");
  reportUnexplained(deps.log, deps.telemetry, hour, unexplained, { run_id: runId });
  return rowsWritten;
}

/** Records a failed run and says so; the scheduler retries it later. */
async function failRun(
  deps: JobDeps,
  hour: number,
  runId: string,
  trigger: Trigger,
  err: unknown,
  stats: Partial<RunStats>,
  started: number,
): Promise<RunSummary> {
  const message = err instanceof Error ? err.message : String(err);
  // The `fail` policy throws before the counts reach `stats`; the run still reports them.
  if (err instanceof UnknownDevicesError) {
    stats.unknownDevices = err.devices;
    stats.unknownRows = err.rows;
  }
  await markFailed(deps.db, runId, message, stats).catch((e) =>
    deps.log.error("could not record the failed batch run", { run_id: runId, error: e })
  );
  const summary: RunSummary = {
    runId,
    hour,
    trigger,
    status: "failed",
    rowsRead: stats.rowsRead ?? 0,
    filesRead: stats.filesRead ?? 0,
    rowsWritten: 0,
    breaches: 0,
    unknownDevices: stats.unknownDevices ?? 0,
    unknownRows: stats.unknownRows ?? 0,
    durationMs: Math.round(performance.now() - started),
    error: message,
    consoleUrl: stats.consoleUrl,
  };
  deps.telemetry.runs.inc({ trigger, status: "failed" });
  deps.log.error("batch hour failed", { ...summaryFields(summary) });
  return summary;
}

/** Listings and reads of an hour tried before a vanishing file fails the run. */
const READ_ATTEMPTS = 5;

/**
 * Reads the hour, listing it again when a file vanishes under the read: the
 * speed layer compacts an hour once its watermark is past it, which while it
 * catches up a backlog can be just when the hour completes and is batched.
 * The compacted file holds the same rows, so a fresh listing reads them.
 */
async function readWhole(
  deps: JobDeps,
  hour: number,
  columns: readonly string[],
  beforeRead: (size: { rows: number; files: number }) => void,
): ReturnType<HourReader> {
  for (let attempt = 1;; attempt++) {
    try {
      return await deps.readHour(deps.store, hour, columns, { strings: "dictionary", beforeRead });
    } catch (err) {
      if (!(err instanceof StoreError && err.kind === "not_found") || attempt >= READ_ATTEMPTS) {
        throw err;
      }
      deps.log.info(
        "a lake file of the hour vanished while it was read (compacted): reading again",
        {
          hour: hourLabel(hour),
          key: err.key,
        },
      );
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

/** Whether the lake holds all of `hour` now; undefined when the wall clock rules (readRule). */
async function isComplete(deps: JobDeps, hour: number): Promise<boolean | undefined> {
  const { completeness } = await readRule(deps.db, deps.plan);
  if (!completeness) return undefined;
  return hourComplete(hour, completeness.completeMs, deps.plan.speed.allowedLatenessMs);
}

function summaryFields(s: RunSummary): Record<string, unknown> {
  return {
    hour: hourLabel(s.hour),
    run_id: s.runId,
    trigger: s.trigger,
    status: s.status,
    rows_read: s.rowsRead,
    files_read: s.filesRead,
    rows_written: s.rowsWritten,
    breaches: s.breaches,
    unknown_devices: s.unknownDevices,
    duration_ms: s.durationMs,
    ...(s.lakeComplete !== undefined ? { lake_complete: s.lakeComplete } : {}),
    ...(s.note ? { note: s.note } : {}),
    ...(s.error ? { error: s.error } : {}),
    ...(s.consoleUrl ? { console: s.consoleUrl } : {}),
  };
}
