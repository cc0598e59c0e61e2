/**
 * The telemetry event as antennas publish it on topic `devices`, and the
 * reasons a message can be rejected. Shared by the simulator, the speed layer
 * (validation) and the lake (Parquet rows).
 */

/** One device-usage event. `timestamp` is epoch seconds, as on the wire. */
export interface DeviceEvent {
  readonly bytes: number;
  readonly timestamp: number;
  readonly app: string;
  /** Device UUID. */
  readonly id: string;
  /** Antenna UUID. */
  readonly antenna_id: string;
}

/** A valid event with where it came from in Kafka. */
export interface SourcedEvent extends DeviceEvent {
  readonly partition: number;
  /** Kafka offset (bigint-safe as a number up to 2^53). */
  readonly offset: number;
}

/** Why a message went to the dead-letter topic. Stable names: they are metric labels. */
export type DeadLetterReason =
  | "oversized"
  | "not_json"
  | "not_object"
  | "missing_field"
  | "wrong_type"
  | "invalid_value"
  | "negative_bytes"
  | "non_integer_bytes"
  | "bytes_too_large"
  | "timestamp_too_old"
  | "timestamp_in_future";

export const DEAD_LETTER_REASONS: readonly DeadLetterReason[] = [
  "oversized",
  "not_json",
  "not_object",
  "missing_field",
  "wrong_type",
  "invalid_value",
  "negative_bytes",
  "non_integer_bytes",
  "bytes_too_large",
  "timestamp_too_old",
  "timestamp_in_future",
];
