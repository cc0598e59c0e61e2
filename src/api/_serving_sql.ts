/**
 * The hourly series as the API queries it, live: the rows of serving_hourly
 * (007_complete_hours.sql) for a range of whole hours, plus what the speed
 * layer holds of windows still open (the partials every flush writes, see
 * 013_live_windows.sql), each row saying whether it is `final`. Composed of
 * the owners' fragments over the base tables (src/batch's bytes_hourly and
 * current hours, src/speed's windows, src/db's users) so that the speed
 * windows are selected by their raw "timestamp": a range on the view's
 * folded hour is a range of date_trunc('hour', "timestamp"), which the
 * speed_partials key (type, id, "timestamp") cannot serve; a raw range makes
 * one id's day a single range scan of that key, and every id's range a BRIN
 * scan (006_speed_partials_brin.sql). With `from` and `to` on whole hours the
 * two ranges select the same windows.
 */
import type { Plan } from "../config/plan.ts";
import { foldCaseSql } from "../core/aggregate.ts";
import { currentBatchHourlySql, notBatchedSql } from "../batch/mod.ts";
import {
  type SpeedHourlyParams,
  speedHourlySql,
  standInHourlySql,
  type StandInSql,
} from "../speed/mod.ts";

// The speed fragment is re-exported: the API's hourly speed series uses it alone.
export { speedHourlySql, type StandInSql };

/** Placeholders of a merged hourly query; `$1` type, `$2` from, `$3` to are fixed. */
export interface MergedHourlyParams extends SpeedHourlyParams {
  /** A batch-only metric's stand-in for hours not batched yet (see `standInOf`). */
  readonly standIn?: StandInSql;
}

/**
 * The speed metric that gives a batch-only metric's values before its hour
 * is batched: its `reconcile_with` metric, when it counts the same thing
 * (same aggregation, field and filter) under the same key, or per device
 * (`group_by: id`) for a metric per user field (email, name), which the
 * windows then get from `user_metadata` as the batch layer does.
 */
export interface StandIn {
  /** The speed metric's name. */
  readonly type: string;
  /** The user_metadata column the batch metric groups by; undefined = same key. */
  readonly user?: "email" | "name";
  /** Key of devices without a user (unknown_id policy); undefined = left out. */
  readonly unknownId?: string;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/**
 * The stand-in of batch metric `name` in `plan` (undefined: none, or the
 * metric is a speed metric too and its own windows serve it).
 *
 * @example
 * standInOf(plan, "email_bytes_total") // { type: "user_bytes_total", user: "email", unknownId: "unknown" }
 */
export function standInOf(plan: Plan, name: string): StandIn | undefined {
  const m = plan.batch.metrics.find((x) => x.name === name);
  if (!m?.reconcileWith || plan.speed.metrics.some((s) => s.name === name)) return undefined;
  const s = plan.speed.metrics.find((x) => x.name === m.reconcileWith);
  if (!s || s.aggregation !== m.aggregation || !["sum", "count"].includes(m.aggregation)) {
    return undefined;
  }
  if ((m.aggregation === "sum" && s.field !== m.field) || !same(s.filter, m.filter)) {
    return undefined;
  }
  if (same(s.groupBy, m.groupBy)) return { type: s.name };
  const [user] = m.groupBy;
  if (!same(s.groupBy, ["id"]) || m.groupBy.length !== 1 || (user !== "email" && user !== "name")) {
    return undefined;
  }
  const { policy, id } = plan.batch.unknownDevice;
  return { type: s.name, user, ...(policy === "unknown_id" ? { unknownId: id } : {}) };
}

/** A stand-in's shape: `same`, `email`, `email/unknown`, `name` or `name/unknown`. */
export function standInShape(s: StandIn): string {
  return s.user ? `${s.user}${s.unknownId ? "/unknown" : ""}` : "same";
}

/** The values of a stand-in's placeholders, in order: its type, then the unknown key if any. */
export function standInValues(s: StandIn): string[] {
  return s.unknownId ? [s.type, s.unknownId] : [s.type];
}

/**
 * Every stand-in shape (see `standInShape`) with its placeholders, the type
 * at `first` and the unknown key after it, so a route prepares one SQL text
 * per shape.
 *
 * @example
 * standInShapes(6) // [["same", { type: "$6" }], ["email", { type: "$6", user: "email" }], …]
 */
export function standInShapes(first: number): [string, StandInSql][] {
  const type = `$${first}`, unknownId = `$${first + 1}`;
  return [
    ["same", { type }],
    ...(["email", "name"] as const).flatMap((user): [string, StandInSql][] => [
      [user, { type, user }],
      [`${user}/unknown`, { type, user, unknownId }],
    ]),
  ];
}

/**
 * `value` folded by the aggregation named in the text placeholder `rule`,
 * with the core's combine rule (src/core/aggregate.ts): SUM for sum and count,
 * MIN / MAX for min and max, MAX for count_distinct (a lower bound: members
 * are not kept across windows).
 *
 * @example
 * foldSql("$5") // (CASE $5::text WHEN 'min' THEN min(value) … END)::bigint
 */
export function foldSql(rule: string): string {
  return `(${foldCaseSql(`${rule}::text`, "value")})::bigint`;
}

/**
 * serving_hourly's rows (timestamp, id, value, source, final) of type `$1` in
 * [`$2`, `$3`), both whole hours, live: the batch value where the hour's
 * batch is current (batched, and the lake unchanged since; final), else the
 * folded speed windows, open ones included (which stay in batched hours for
 * a type the batch layer does not compute), or for a batch-only metric its
 * stand-in's windows.
 *
 * @example
 * `SELECT * FROM (${mergedHourlySql({ fold: "$5" })}) m ORDER BY timestamp, id`
 */
export function mergedHourlySql(p: MergedHourlyParams): string {
  return `${currentBatchHourlySql(p.id)}
  UNION ALL
  SELECT s.timestamp, s.id, s.value, 'speed'::text AS source, s.final
    FROM (${speedHourlySql(p)}${
    p.standIn ? `\n  UNION ALL\n  ${standInHourlySql(p.standIn, p.id)}` : ""
  }) s
    WHERE ${notBatchedSql("s.timestamp")}`;
}
