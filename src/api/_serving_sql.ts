/**
 * The hourly series as the API queries it, live: the rows of serving_hourly
 * (007_complete_hours.sql) for a range of whole hours, plus what the speed
 * layer holds of windows still open (the partials every flush writes, see
 * 013_live_windows.sql), each row saying whether it is `final`. Written
 * against the base tables so that the speed windows are selected by their
 * raw "timestamp": a range on the view's folded hour is a range of
 * date_trunc('hour', "timestamp"), which the speed_partials key
 * (type, id, "timestamp") cannot serve; a raw range makes one id's day a
 * single range scan of that key, and every id's range a BRIN scan
 * (006_speed_partials_brin.sql). With `from` and `to` on whole hours the two
 * ranges select the same windows.
 */
import type { Plan } from "../config/plan.ts";
import { foldCaseSql } from "../core/aggregate.ts";

/** Placeholders of a merged hourly query; `$1` type, `$2` from, `$3` to are fixed. */
export interface MergedHourlyParams {
  /** The id's placeholder, e.g. `"$4"`; undefined = every id. */
  readonly id?: string;
  /** The placeholder of the speed windows' fold (`sum`, `count`, `min`, `max`, `count_distinct`). */
  readonly fold: string;
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

/** `StandIn` as placeholders, e.g. `{ type: "$6", user: "email", unknownId: "$7" }`. */
export interface StandInSql {
  readonly type: string;
  readonly user?: "email" | "name";
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

// A speed hour is final once every partition that wrote rows in it has its
// watermark past the hour's end plus the allowed lateness (it takes no more
// late events), as a window is in bytes_live (013). `m` is speed_metrics.
const hourFinal = (alias: string) =>
  `bool_and(COALESCE(date_trunc('hour', ${alias}."timestamp") + interval '1 hour'
    + m.allowed_lateness_ms * interval '1 millisecond' <= w.watermark, false))`;

/**
 * The speed layer's 5-minute windows of type `$1` in [`$2`, `$3`) folded into
 * hours, open windows included, as serving_hourly folds the closed ones
 * (sql/007_complete_hours.sql): SUM for sum and count, MIN / MAX for min and
 * max (folding the partitions' partials directly gives the same), and a
 * count_distinct metric counts the distinct members of the hour's windows
 * (speed_distinct). The branch the fold does not take is cut by a one-time
 * filter, never scanned. Columns: timestamp, id, value, final.
 *
 * @example
 * speedHourlySql({ id: "$4", fold: "$5" }) // SELECT date_trunc('hour', p."timestamp") AS timestamp, …
 */
export function speedHourlySql(p: MergedHourlyParams): string {
  return `SELECT date_trunc('hour', p."timestamp") AS timestamp, p.id,
      (${foldCaseSql(`${p.fold}::text`, "p.value")})::bigint AS value, ${hourFinal("p")} AS final
    FROM speed_partials p
    LEFT JOIN speed_metrics m ON m.type = p.type
    LEFT JOIN speed_watermarks w ON w."partition" = p."partition"
    WHERE ${p.fold}::text <> 'count_distinct'
      AND p.type = $1 AND p."timestamp" >= $2::timestamp AND p."timestamp" < $3::timestamp${
    p.id ? ` AND p.id = ${p.id}` : ""
  }
    GROUP BY 1, 2
  UNION ALL
  SELECT date_trunc('hour', d."timestamp") AS timestamp, d.id,
      count(DISTINCT d.member)::bigint AS value, ${hourFinal("d")} AS final
    FROM speed_distinct d
    LEFT JOIN speed_metrics m ON m.type = d.type
    LEFT JOIN speed_watermarks w ON w."partition" = d."partition"
    WHERE ${p.fold}::text = 'count_distinct'
      AND d.type = $1 AND d."timestamp" >= $2::timestamp AND d."timestamp" < $3::timestamp${
    p.id ? ` AND d.id = ${p.id}` : ""
  }
    GROUP BY 1, 2`;
}

/**
 * A batch-only metric's hours from its stand-in's windows (sum and count
 * only: both fold by SUM), keyed as the batch layer keys them.
 */
function standInHourlySql(s: StandInSql, id: string | undefined): string {
  const key = !s.user
    ? "p.id"
    : s.unknownId
    ? `COALESCE(u.${s.user}, ${s.unknownId}::text)`
    : `u.${s.user}`;
  const users = !s.user ? "" : `${s.unknownId ? "LEFT " : ""}JOIN user_metadata u ON u.id = p.id`;
  return `SELECT date_trunc('hour', p."timestamp") AS timestamp, ${key} AS id,
      sum(p.value)::bigint AS value, ${hourFinal("p")} AS final
    FROM speed_partials p
    ${users}
    LEFT JOIN speed_metrics m ON m.type = p.type
    LEFT JOIN speed_watermarks w ON w."partition" = p."partition"
    WHERE p.type = ${s.type}::text AND p."timestamp" >= $2::timestamp
      AND p."timestamp" < $3::timestamp${id ? ` AND ${key} = ${id}` : ""}
    GROUP BY 1, 2`;
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
  return `SELECT h.timestamp, h.id, h.value, 'batch'::text AS source, true AS final
    FROM bytes_hourly h
    WHERE h.type = $1 AND h.timestamp >= $2::timestamp AND h.timestamp < $3::timestamp${
    p.id ? ` AND h.id = ${p.id}` : ""
  }
      AND EXISTS (SELECT 1 FROM batch_hours_current bh WHERE bh.hour = h.timestamp)
  UNION ALL
  SELECT s.timestamp, s.id, s.value, 'speed'::text AS source, s.final
    FROM (${speedHourlySql(p)}${
    p.standIn ? `\n  UNION ALL\n  ${standInHourlySql(p.standIn, p.id)}` : ""
  }) s
    WHERE NOT EXISTS (
      SELECT 1 FROM batch_hours_current bh
      JOIN metric_catalog bc ON bc.layer = 'batch' AND bc.type = $1
      WHERE bh.hour = s.timestamp)`;
}
