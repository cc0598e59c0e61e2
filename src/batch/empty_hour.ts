/**
 * Runs of hours before any data (src/core/completeness.ts `beforeAnyData`)
 * for which the lake holds nothing (a lake written before the speed layer
 * recorded its hours may hold older ones, which run as usual):
 * asked for by hand (`deno task batch --hour`, `POST /api/v1/batch/runs`),
 * e.g. days before the pipeline existed. Such a run is recorded as a
 * succeeded run that says the hour is empty, and writes nothing else: no
 * `batch_hours` row (so `/ready`'s `lastCompletedHour` does not name it, and
 * a late event that later lands in the hour finds it never batched, like
 * any hour), no rows, no reconciliation. Recording rather than refusing keeps
 * a range that starts before the data, or a script, from failing on hours
 * that simply hold nothing.
 */
import { beforeAnyData } from "../core/completeness.ts";
import { readRule } from "./hour_state.ts";
import { hourLabel } from "./hours.ts";
import type { JobDeps } from "./job.ts";
import { markSucceeded } from "./runs.ts";
import type { RunSummary, Trigger } from "./types.ts";

/** The first hour with data when `hour` is before it (the run is empty); else undefined. */
export async function emptyBefore(deps: JobDeps, hour: number): Promise<number | undefined> {
  const { firstDataHour } = await readRule(deps.db, deps.plan);
  return beforeAnyData(hour, firstDataHour) ? firstDataHour : undefined;
}

/** The note of an empty run. */
export function emptyNote(firstDataHourMs: number): string {
  return `empty: the hour is before any data this pipeline has seen (the first hour with ` +
    `data is ${hourLabel(firstDataHourMs)}): nothing to batch`;
}

/** Ends the claimed run of an empty hour as succeeded, with nothing written. */
export async function recordEmpty(
  deps: JobDeps,
  run: { hour: number; runId: string; trigger: Trigger; firstData: number; started: number },
): Promise<RunSummary> {
  const note = emptyNote(run.firstData);
  const zero = { rowsRead: 0, filesRead: 0, rowsWritten: 0, unknownDevices: 0, unknownRows: 0 };
  await markSucceeded(deps.db, run.runId, { ...zero, breaches: 0, note });
  deps.telemetry.runs.inc({ trigger: run.trigger, status: "succeeded" });
  const summary: RunSummary = {
    runId: run.runId,
    hour: run.hour,
    trigger: run.trigger,
    status: "succeeded",
    ...zero,
    breaches: 0,
    durationMs: Math.round(performance.now() - run.started),
    note,
  };
  deps.log.info("batch hour empty: before any data", {
    hour: hourLabel(run.hour),
    run_id: run.runId,
    trigger: run.trigger,
    first_data_hour: hourLabel(run.firstData),
  });
  return summary;
}
