/**
 * What a metric means, compiled once from its plan and used by BOTH layers:
 * which rows it keeps (filter), which group key a row falls in, and which value
 * it contributes. The speed layer feeds events, the batch layer feeds lake rows
 * joined with user metadata; neither re-implements these rules.
 */
import type { Aggregation, EventField, JoinedField, MetricPlan } from "./vocabulary.ts";

/** An event, possibly joined with its user's metadata (batch layer). */
export interface MetricRow {
  bytes: number;
  /** Epoch seconds. */
  timestamp: number;
  app: string;
  id: string;
  antenna_id: string;
  email?: string;
  name?: string;
}

export interface CompiledMetric {
  readonly name: string;
  readonly aggregation: Aggregation;
  /** False when the metric's filter rejects the row. */
  accepts(row: MetricRow): boolean;
  /** The group key written to the `id` column: group_by values joined by `|`. */
  key(row: MetricRow): string;
  /** Numeric contribution (sum, min, max; 1 for count). */
  value(row: MetricRow): number;
  /** The member counted by count_distinct. */
  member(row: MetricRow): string;
}

/** Separator of multi-field keys; ids and apps never contain it in practice. */
export const KEY_SEPARATOR = "|";

/** A field a metric can read: an event's, or (batch layer) one joined from user metadata. */
export type MetricField = EventField | JoinedField;

/** The fields a metric reads, by what it reads them for. */
export interface MetricFields {
  /** Group key fields, in key order. */
  readonly key: readonly MetricField[];
  /** Fields its filter tests (`in` and `not_in`), each once. */
  readonly filter: readonly MetricField[];
  /** The field it aggregates; undefined for `count`, which counts rows. */
  readonly value: MetricField | undefined;
}

/**
 * The fields a metric reads: what the batch layer fetches from the lake, and
 * what rows must agree on to be folded together.
 *
 * @example
 * metricFields({ name: "m", groupBy: ["app"], aggregation: "count", field: "bytes",
 *   filter: { notIn: { antenna_id: ["a"] } } })
 * // { key: ["app"], filter: ["antenna_id"], value: undefined }
 */
export function metricFields(plan: MetricPlan): MetricFields {
  const filter = new Set([
    ...Object.keys(plan.filter?.in ?? {}),
    ...Object.keys(plan.filter?.notIn ?? {}),
  ] as MetricField[]);
  return {
    key: plan.groupBy,
    filter: [...filter],
    value: plan.aggregation === "count" ? undefined : plan.field,
  };
}

// One closure per field with a fixed property name: `row[field]` would be a
// megamorphic keyed load on the speed layer's per-event path.
function getter(field: MetricField): (row: MetricRow) => string | number | undefined {
  switch (field) {
    case "bytes":
      return (row) => row.bytes;
    case "timestamp":
      return (row) => row.timestamp;
    case "app":
      return (row) => row.app;
    case "id":
      return (row) => row.id;
    case "antenna_id":
      return (row) => row.antenna_id;
    case "email":
      return (row) => row.email;
    case "name":
      return (row) => row.name;
  }
}

function compileFilter(plan: MetricPlan): (row: MetricRow) => boolean {
  const checks: ((row: MetricRow) => boolean)[] = [];
  for (const [field, values] of Object.entries(plan.filter?.in ?? {})) {
    const get = getter(field as MetricField);
    const set = new Set((values ?? []).map(String));
    checks.push((row) => set.has(String(get(row))));
  }
  for (const [field, values] of Object.entries(plan.filter?.notIn ?? {})) {
    const get = getter(field as MetricField);
    const set = new Set((values ?? []).map(String));
    checks.push((row) => !set.has(String(get(row))));
  }
  if (checks.length === 0) return () => true;
  if (checks.length === 1) return checks[0];
  return (row) => checks.every((c) => c(row));
}

function compileKey(groupBy: readonly MetricField[]): (row: MetricRow) => string {
  if (groupBy.length === 1) {
    const get = getter(groupBy[0]);
    return (row) => String(get(row));
  }
  const gets = groupBy.map(getter);
  return (row) => gets.map((g) => String(g(row))).join(KEY_SEPARATOR);
}

/**
 * Compiles a metric's plan into the functions both layers apply.
 *
 * @example
 * const m = compileMetric({ name: "app_bytes_total", groupBy: ["app"], aggregation: "sum", field: "bytes" });
 * m.key(event) // "SKYPE"
 */
export function compileMetric(plan: MetricPlan): CompiledMetric {
  const get = getter(plan.field);
  return {
    name: plan.name,
    aggregation: plan.aggregation,
    accepts: compileFilter(plan),
    key: compileKey(plan.groupBy),
    value: plan.aggregation === "count" ? () => 1 : (row) => Number(get(row)),
    member: (row) => String(get(row)),
  };
}
