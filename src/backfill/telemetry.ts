/**
 * What the backfill reports, declared once: events replayed from the lake and
 * partial rows written, per metric, and the partitions left to recompute.
 */
import {
  type Counter,
  type Gauge,
  type Registry,
  registry as processRegistry,
} from "../metrics.ts";

export interface BackfillTelemetry {
  /** Labels: metric. */
  readonly events: Counter;
  /** Labels: metric. */
  readonly rows: Counter;
  readonly open: Gauge;
}

/** Registers (or finds) the backfill's metrics in `registry`. */
export function backfillTelemetry(registry: Registry = processRegistry): BackfillTelemetry {
  return {
    events: registry.counter(
      "backfill_events_replayed_total",
      "Lake events replayed to recompute the windows of new or changed speed metrics, by metric.",
    ),
    rows: registry.counter(
      "backfill_rows_written_total",
      "Partial window rows written by backfills, by metric.",
    ),
    open: registry.gauge(
      "backfill_open_partitions",
      "(metric, partition) backfills not finished yet.",
    ),
  };
}
