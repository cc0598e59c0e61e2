/**
 * Every metric the speed layer reports, declared in one place (names, help,
 * labels) so the serving layer's `/metrics` and the tests read the same names.
 * Metrics live in a `Registry` (the process registry by default); two layers in
 * one process given the same registry add into the same counters.
 */
import {
  type Counter,
  type Gauge,
  type Registry,
  registry as processRegistry,
} from "../metrics.ts";

import type { Ingested, SpeedPartition } from "./partition.ts";
import type { SpeedStatus } from "./types.ts";
export interface SpeedTelemetry {
  readonly consumed: Counter;
  readonly valid: Counter;
  /** Labels: reason. */
  readonly deadLetters: Counter;
  readonly lateUpdated: Counter;
  readonly lateDropped: Counter;
  readonly windowsWritten: Counter;
  readonly lakeFiles: Counter;
  readonly lakeRows: Counter;
  /** Labels: sink (postgres, lake, dead_letter_topic, kafka_commit). */
  readonly sinkRetries: Counter;
  readonly flushes: Counter;
  /** Labels: partition. */
  readonly lag: Gauge;
  readonly watermark: Gauge;
  readonly committedOffset: Gauge;
}

/** Registers (or finds) the speed layer's metrics in `registry`. */
export function speedTelemetry(registry: Registry = processRegistry): SpeedTelemetry {
  return {
    consumed: registry.counter(
      "speed_messages_consumed_total",
      "Messages read from the source topic, valid or not.",
    ),
    valid: registry.counter("speed_events_valid_total", "Messages that passed validation."),
    deadLetters: registry.counter(
      "speed_dead_letters_total",
      "Messages dead-lettered, by reason.",
    ),
    lateUpdated: registry.counter(
      "speed_late_updated_total",
      "Late events that updated an already written window (within the allowed lateness).",
    ),
    lateDropped: registry.counter(
      "speed_late_dropped_total",
      "Events later than the allowed lateness: skipped by the speed layer, kept in the lake.",
    ),
    windowsWritten: registry.counter(
      "speed_windows_written_total",
      "Windows (per partition) whose end the watermark passed and that were written.",
    ),
    lakeFiles: registry.counter("lake_files_written_total", "Parquet files written to the lake."),
    lakeRows: registry.counter("lake_rows_written_total", "Rows written to lake files."),
    sinkRetries: registry.counter(
      "speed_sink_retries_total",
      "Failed writes to a sink that were retried, by sink.",
    ),
    flushes: registry.counter("speed_flushes_total", "Transactions that flushed window deltas."),
    lag: registry.gauge("speed_consumer_lag", "Messages not yet consumed, per partition."),
    watermark: registry.gauge(
      "speed_watermark_seconds",
      "Event-time watermark per partition, epoch seconds.",
    ),
    committedOffset: registry.gauge(
      "speed_committed_offset",
      "Next offset committed to Kafka per partition.",
    ),
  };
}

/** Counts what one source batch did to its partition (partition.ts `ingest`). */
export function countIngest(t: SpeedTelemetry, st: SpeedPartition, r: Ingested): void {
  t.consumed.inc(undefined, r.consumed);
  t.valid.inc(undefined, r.valid);
  if (r.lateUpdated) t.lateUpdated.inc(undefined, r.lateUpdated);
  if (r.lateDropped) t.lateDropped.inc(undefined, r.lateDropped);
  for (const reason of r.rejected) t.deadLetters.inc({ reason });
  t.lag.set(st.lag, { partition: st.partition });
  const wm = st.windows.watermarkMs;
  if (Number.isFinite(wm)) t.watermark.set(wm / 1000, { partition: st.partition });
}

/** The process-wide counters `status()` reports, read from the registry. */
export function countersOf(t: SpeedTelemetry): SpeedStatus["counters"] {
  return {
    consumed: t.consumed.get(),
    valid: t.valid.get(),
    deadLetters: t.deadLetters.total(),
    lateUpdated: t.lateUpdated.get(),
    lateDropped: t.lateDropped.get(),
    windowsWritten: t.windowsWritten.get(),
    flushes: t.flushes.get(),
  };
}
