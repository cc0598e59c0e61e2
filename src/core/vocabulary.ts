/**
 * The domain vocabulary: the fields an event carries, the fields a batch
 * metric may join from user metadata, the aggregations, and the shapes of a
 * compiled metric and event schema. The config spec draws its allowed values
 * from these lists and its plan from these types, and the core computes with
 * them, so `core/` depends on nothing above it and each list is typed once.
 */

/** Fields of a telemetry event, as published by the antennas (usable by every metric). */
export const EVENT_FIELDS = ["bytes", "timestamp", "app", "id", "antenna_id"] as const;
/** Fields joined from user metadata (batch metrics only). */
export const JOINED_FIELDS = ["email", "name"] as const;
/** Fields whose values are numbers: what sum/min/max can aggregate. */
export const NUMERIC_FIELDS: readonly string[] = ["bytes", "timestamp"];
export const AGGREGATIONS = ["sum", "count", "min", "max", "count_distinct"] as const;

export type EventField = (typeof EVENT_FIELDS)[number];
export type JoinedField = (typeof JOINED_FIELDS)[number];
export type Aggregation = (typeof AGGREGATIONS)[number];

/** An event filter: every listed field must match (AND). */
export interface FilterPlan {
  /** Field must be one of these values. */
  readonly in?: Readonly<Partial<Record<EventField | JoinedField, readonly (string | number)[]>>>;
  /** Field must be none of these values. */
  readonly notIn?: Readonly<
    Partial<Record<EventField | JoinedField, readonly (string | number)[]>>
  >;
}

/** One compiled metric of either layer. */
export interface MetricPlan {
  /** Metric name; written to the `type` column. A validated SQL identifier. */
  readonly name: string;
  /** Group key fields; the key written to `id` is their values joined by `|`. */
  readonly groupBy: readonly (EventField | JoinedField)[];
  readonly aggregation: Aggregation;
  /** Field aggregated (ignored by `count`). Default `bytes`. */
  readonly field: EventField | JoinedField;
  readonly filter?: FilterPlan;
  readonly description?: string;
}

/** What makes an event valid (compiled from pipeline.yaml's `schema`). */
export interface SchemaPlan {
  /** Larger payloads are dead-lettered (`oversized`). */
  readonly maxPayloadBytes: number;
  /** Earliest accepted event time, epoch ms. */
  readonly minTimestampMs: number;
  /** How far past the wall clock an event time may be, ms. */
  readonly maxFutureMs: number;
  readonly maxAppLength: number;
}
