/**
 * Front door of the backfill: the history of metrics added or changed while
 * the pipeline runs (or while it was down). A switch (switch.ts) records
 * where each partition's live windows of a new or changed speed metric
 * begin; the worker (worker.ts) replays the lake below that offset through
 * the core's window state (replay.ts) and writes the windows through the
 * speed layer's sink; batch hours of new or changed batch metrics are run
 * again. `deno task backfill` (src/cli/backfill.ts) does the same by hand and drops the
 * rows of removed metrics.
 */
export {
  switchAtStoredOffsets,
  type SwitchPlan,
  switchStoredPartitions,
  switchWrite,
} from "./switch.ts";
export {
  type BackfillStatus,
  type BackfillWorker,
  type BackfillWorkerDeps,
  createBackfillWorker,
  type MetricBackfill,
  type RowProgress,
} from "./worker.ts";
export {
  compareDefinitions,
  type DefinitionChanges,
  reconcileAtStart,
  recordApplied,
  type StartReconciliation,
  switchPlanOf,
} from "./history.ts";
export { PartitionReplay, switchFrom, type WindowRange } from "./replay.ts";
export { dropMetric, startManualBackfill } from "./manual.ts";
