/**
 * Every metric the batch layer reports, declared in one place (names, help)
 * so `/metrics`, the scheduler and the tests read the same names. Metrics
 * live in a `Registry` (the process registry by default).
 */
import {
  type Counter,
  type Gauge,
  type Registry,
  registry as processRegistry,
} from "../metrics.ts";

export interface BatchTelemetry {
  /** Start of the oldest hour the lake does not hold all of yet, epoch seconds (0: unknown). */
  readonly oldestIncompleteHour: Gauge;
  /** Batched hours whose lake changed after their run read it. */
  readonly staleHours: Gauge;
  /** Labels: metric. Reconciled differences the speed layer's late-dropped events do not explain. */
  readonly unexplainedDifferences: Counter;
  /** Labels: trigger, status. */
  readonly runs: Counter;
}

/** Registers (or finds) the batch layer's metrics in `registry`. */
export function batchTelemetry(registry: Registry = processRegistry): BatchTelemetry {
  return {
    oldestIncompleteHour: registry.gauge(
      "batch_oldest_incomplete_hour_seconds",
      "Start of the oldest hour the lake does not hold all of yet (every partition's lake " +
        "complete past its end plus the allowed lateness), epoch seconds; 0 when unknown.",
    ),
    staleHours: registry.gauge(
      "batch_stale_hours",
      "Batched hours whose lake changed after their run read it (late events): run again " +
        "after batch.rerun_after.",
    ),
    unexplainedDifferences: registry.counter(
      "batch_unexplained_differences_total",
      "Batch runs whose batch-speed difference for a metric is not explained by the speed " +
        "layer's late-dropped events: data went missing. Labels: metric.",
    ),
    runs: registry.counter("batch_runs_total", "Batch runs finished, by trigger and status."),
  };
}
