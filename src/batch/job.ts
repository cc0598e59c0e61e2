/**
 * One hour's batch job, end to end: read exactly the hour's lake partition
 * (only the columns the plan needs), join user metadata, compute every batch
 * metric, the quota breaches and the devices without metadata with the pure
 * core, then write it all in one transaction. The caller has already claimed
 * the hour (a `running` row in batch_runs); the job keeps that lease alive
 * while it works and records the outcome, success or failure, on the run.
 */
import type { Plan } from "../config/plan.ts";
import type { Db } from "../db/db.ts";
import type { ObjectStore } from "../lake/mod.ts";
import { HOUR_MS } from "../core/window.ts";
import type { Logger } from "../log.ts";
import { computeHour, type HourColumns, neededColumns } from "./compute.ts";
import { UnknownDevicesError } from "./errors.ts";
import { hourLabel } from "./hours.ts";
import { markFailed, renewLease, type RunStats } from "./runs.ts";
import type { RunSummary, Trigger } from "./types.ts";
import { loadUsers } from "./users.ts";
import { writeHour } from "./write.ts";

/**
 * What the job needs from the lake: the lake module's `readHour`. The job asks
 * for string columns as dictionaries; a reader may ignore that and return
 * plain arrays.
 */
export type HourReader = (
  store: ObjectStore,
  hourStartMs: number,
  columns?: readonly string[],
  options?: { readonly strings?: "array" | "dictionary" },
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
  const { plan, db, store, log } = deps;
  const started = performance.now();
  const label = hourLabel(hour);
  const stats: Partial<RunStats> = {};
  // Renew well before expiry so a slow GCS read never looks like a dead process.
  const heartbeat = setInterval(() => {
    renewLease(db, runId, deps.leaseMs).catch((err) =>
      log.warn("batch lease renewal failed", { hour: label, run_id: runId, error: err })
    );
  }, Math.max(1_000, deps.leaseMs / 3));
  try {
    // Phase times go to the log: they are what to look at when an hour is slow.
    const phases: Record<string, number> = {};
    let mark = performance.now();
    const lap = (name: string) => {
      const now = performance.now();
      phases[name] = Math.round(now - mark);
      mark = now;
    };
    // The user metadata comes from PostgreSQL while the lake is decoded here:
    // one waits on the database, the other on the CPU.
    const timed = async <T>(name: string, work: Promise<T>): Promise<T> => {
      const value = await work;
      phases[name] = Math.round(performance.now() - mark);
      return value;
    };
    const [users, data] = await Promise.all([
      timed("users_ms", loadUsers(db)),
      timed(
        "read_ms",
        deps.readHour(store, hour, neededColumns(plan.batch), { strings: "dictionary" }),
      ),
    ]);
    mark = performance.now();
    stats.rowsRead = data.rows;
    stats.filesRead = fileCount(data.files);
    const result = computeHour(plan.batch, data.columns, data.rows, users);
    lap("compute_ms");
    stats.unknownDevices = result.unknownDevices;
    stats.unknownRows = result.unknownRows;
    if (result.unknownDevices > 0) {
      log.warn("devices without user metadata", {
        hour: label,
        run_id: runId,
        policy: plan.batch.unknownDevice.policy,
        devices: result.unknownDevices,
        rows: result.unknownRows,
        sample: result.unknownSample,
      });
    }
    // An empty past hour is a success, but say the partition was not there:
    // lost lake files and a quiet hour should not look the same.
    let note: string | undefined;
    if (data.missing || (data.rows === 0 && stats.filesRead === 0)) {
      note = hour + HOUR_MS <= deps.clock()
        ? "no lake partition for this hour (missing)"
        : "no lake partition for this hour yet";
      log.warn("lake partition missing", { hour: label, run_id: runId, lake: store.uri });
    }
    if (result.unknownDevices > 0 && plan.batch.unknownDevice.policy === "drop") {
      note = [
        note,
        `${result.unknownRows} rows of ${result.unknownDevices} unknown devices dropped`,
      ]
        .filter(Boolean).join("; ");
    }
    const { rowsWritten } = await writeHour(db, plan, hour, runId, result, {
      rowsRead: data.rows,
      filesRead: stats.filesRead,
      unknownDevices: result.unknownDevices,
      unknownRows: result.unknownRows,
      note,
    });
    lap("write_ms");
    const summary: RunSummary = {
      runId,
      hour,
      trigger,
      status: "succeeded",
      rowsRead: data.rows,
      filesRead: stats.filesRead,
      rowsWritten,
      breaches: result.breaches.length,
      unknownDevices: result.unknownDevices,
      unknownRows: result.unknownRows,
      durationMs: Math.round(performance.now() - started),
      note,
    };
    log.info("batch hour succeeded", { ...summaryFields(summary), ...phases });
    return summary;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // The `fail` policy throws before the counts reach `stats`; the run still reports them.
    if (err instanceof UnknownDevicesError) {
      stats.unknownDevices = err.devices;
      stats.unknownRows = err.rows;
    }
    await markFailed(db, runId, message, stats).catch((e) =>
      log.error("could not record the failed batch run", { run_id: runId, error: e })
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
    };
    log.error("batch hour failed", { ...summaryFields(summary) });
    return summary;
  } finally {
    clearInterval(heartbeat);
  }
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
    ...(s.note ? { note: s.note } : {}),
    ...(s.error ? { error: s.error } : {}),
  };
}
