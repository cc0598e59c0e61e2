/**
 * Where an hour is computed: the seam between the job (claim, lease, one
 * write transaction, run record) and the engine that turns the hour's lake
 * partition and the run's `user_metadata` snapshot into an `HourResult`.
 * `batch.engine: process` computes in this process (compute.ts); `spark` runs
 * the same plan as Spark SQL (spark/). Both return the same shape, so what is
 * written, reconciled and confirmed after does not depend on the engine.
 */
import type { MetricPlan, Plan } from "../config/plan.ts";
import type { ObjectStore } from "../lake/mod.ts";
import type { Logger } from "../log.ts";
import type { HourResult, UserMeta } from "./compute.ts";

/** What an engine gets for one hour. */
export interface HourInput {
  readonly plan: Plan;
  /** The lake. */
  readonly store: ObjectStore;
  /** Start of the UTC hour, epoch ms. */
  readonly hour: number;
  /** The claimed run; names the run's files, so a retry never reuses another run's. */
  readonly runId: string;
  /** The run's `user_metadata` snapshot (users.ts loadUsers). */
  readonly users: ReadonlyMap<string, UserMeta>;
  /** Speed metrics the batch ones reconcile with (computeHour's `dropped`). */
  readonly dropped: readonly MetricPlan[];
  readonly log: Logger;
  /** Records where the run runs off this process (a Dataproc console page) once known. */
  readonly onConsoleUrl?: (url: string) => Promise<void>;
  /**
   * Says what was read as soon as it is known (files listed, rows counted),
   * so a run that fails after that still records it.
   */
  readonly onRead?: (read: { files: number; rows?: number }) => void;
}

/** What an engine gives back: the hour's results and what it read. */
export interface HourComputation {
  readonly result: HourResult;
  /** Lake rows after deduplication on (partition, offset). */
  readonly rowsRead: number;
  readonly filesRead: number;
  /** True when the hour has no lake files at all. */
  readonly missing: boolean;
}

/**
 * An engine for the hourly batch. Throws on failure (e.g. `SparkRunError`,
 * `UnknownDevicesError` under the `fail` policy); the job records the message.
 */
export interface HourEngine {
  /** `process` or `spark`, for logs. */
  readonly name: string;
  computeHour(input: HourInput): Promise<HourComputation>;
}
