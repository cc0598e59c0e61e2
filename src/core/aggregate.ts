/**
 * Aggregation arithmetic shared by both layers. `combine` merges two partial
 * values of the same group (sum and count add, min and max pick); the speed
 * layer uses the same rule in SQL when it upserts partial rows, and the batch
 * layer uses it to fold a whole hour. count_distinct keeps the members.
 */
import type { Aggregation } from "../config/plan.ts";
import type { CompiledMetric, MetricRow } from "./metric.ts";

/** Merges two partial values of a numeric aggregation. */
export function combine(aggregation: Exclude<Aggregation, "count_distinct">, a: number, b: number) {
  switch (aggregation) {
    case "sum":
    case "count":
      return a + b;
    case "min":
      return a < b ? a : b;
    case "max":
      return a > b ? a : b;
  }
}

/** The SQL expression that merges a stored value with an incoming one (upserts). */
export function combineSql(aggregation: Exclude<Aggregation, "count_distinct">): string {
  switch (aggregation) {
    case "sum":
    case "count":
      return "target.value + EXCLUDED.value";
    case "min":
      return "LEAST(target.value, EXCLUDED.value)";
    case "max":
      return "GREATEST(target.value, EXCLUDED.value)";
  }
}

/**
 * What a set of rows that agree on every field a metric reads (its key, its
 * filter, its count_distinct member) contributes, whatever the aggregation:
 * the sum, number, smallest and largest of their values. The batch layer folds
 * a whole hour's rows into these first, then hands them to the accumulator.
 */
export interface PartialAggregate {
  readonly sum: number;
  readonly count: number;
  readonly min: number;
  readonly max: number;
}

/** The part of a `PartialAggregate` that a numeric aggregation combines. */
export function partialValue(
  aggregation: Exclude<Aggregation, "count_distinct">,
  p: PartialAggregate,
): number {
  switch (aggregation) {
    case "sum":
      return p.sum;
    case "count":
      return p.count;
    case "min":
      return p.min;
    case "max":
      return p.max;
  }
}

/** Partial results of one metric in one bucket (window or hour): key → value or members. */
export class GroupAccumulator {
  readonly values = new Map<string, number>();
  readonly members = new Map<string, Set<string>>();

  constructor(readonly metric: CompiledMetric) {}

  /** Adds a row the caller already knows the metric accepts. */
  add(row: MetricRow): void {
    this.#put(row);
  }

  /**
   * Adds `partial.count` rows at once, all equal to `row` in every field the
   * metric reads except the aggregated value, which `partial` summarises. The
   * result is the same as adding those rows one by one. The caller already
   * knows the metric accepts `row`; a partial of no rows adds nothing.
   */
  addPartial(row: MetricRow, partial: PartialAggregate): void {
    if (partial.count > 0) this.#put(row, partial);
  }

  /** One row (`partial` undefined) or a summary of equal rows into the row's group. */
  #put(row: MetricRow, partial?: PartialAggregate): void {
    const m = this.metric;
    const key = m.key(row);
    if (m.aggregation === "count_distinct") {
      let set = this.members.get(key);
      if (!set) this.members.set(key, set = new Set());
      set.add(m.member(row));
      return;
    }
    const v = partial ? partialValue(m.aggregation, partial) : m.value(row);
    const prev = this.values.get(key);
    this.values.set(key, prev === undefined ? v : combine(m.aggregation, prev, v));
  }

  /** Final values: key → number (distinct count for count_distinct). */
  results(): Map<string, number> {
    if (this.metric.aggregation !== "count_distinct") return this.values;
    const out = new Map<string, number>();
    for (const [k, s] of this.members) out.set(k, s.size);
    return out;
  }

  get size(): number {
    return this.metric.aggregation === "count_distinct" ? this.members.size : this.values.size;
  }
}
