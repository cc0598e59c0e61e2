/**
 * The shapes the batch layer hands to its callers (scheduler, CLI, API).
 * Hours are epoch ms of a UTC hour start; run ids are strings (BIGSERIAL).
 */

/** What started a run: `rerun` is the scheduler running a stale hour again. */
export type Trigger = "schedule" | "rerun" | "manual" | "backfill" | "api";

export type RunStatus = "queued" | "running" | "succeeded" | "failed" | "conflict";

/** The outcome of one hour's run. */
export interface RunSummary {
  readonly runId: string;
  readonly hour: number;
  readonly trigger: Trigger;
  readonly status: "succeeded" | "failed" | "conflict";
  readonly rowsRead: number;
  readonly filesRead: number;
  readonly rowsWritten: number;
  readonly breaches: number;
  readonly unknownDevices: number;
  readonly unknownRows: number;
  readonly durationMs: number;
  /** Not an error: e.g. the hour's lake partition is missing. */
  readonly note?: string;
  readonly error?: string;
  /** Whether the lake held all of the hour when the run read it; undefined when unknown (speed layer off). */
  readonly lakeComplete?: boolean;
  /** Where the run ran off this process (a Dataproc batch's console page). */
  readonly consoleUrl?: string;
}

/** A row of `batch_runs`. Times are epoch ms. */
export interface RunRecord {
  readonly runId: string;
  readonly hour: number;
  readonly trigger: Trigger;
  readonly status: RunStatus;
  readonly queuedAt: number;
  readonly startedAt?: number;
  readonly finishedAt?: number;
  readonly rowsRead?: number;
  readonly filesRead?: number;
  readonly rowsWritten?: number;
  readonly unknownDevices?: number;
  readonly unknownRows?: number;
  readonly breaches?: number;
  readonly note?: string;
  readonly error?: string;
  /** Whether the lake held all of the hour when the run read it; undefined when unknown. */
  readonly lakeComplete?: boolean;
  /** Where the run ran off this process (a Dataproc batch's console page); undefined in process. */
  readonly consoleUrl?: string;
}

export interface ListRunsOptions {
  /** Only runs of this hour. */
  readonly hour?: number;
  /** Only runs of hours in [from, to]. */
  readonly from?: number;
  readonly to?: number;
  readonly status?: RunStatus;
  /** Newest first; default 100. */
  readonly limit?: number;
}
