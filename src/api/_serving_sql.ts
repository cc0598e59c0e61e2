/**
 * The merged hourly series as the API queries it: the rows of the
 * serving_hourly view (007_complete_hours.sql) for a range of whole hours, written
 * against the base tables so that the speed windows are selected by their
 * raw "timestamp". A range on the view's folded hour is a range of
 * date_trunc('hour', "timestamp"), which the speed_partials key
 * (type, id, "timestamp") cannot serve; a raw range makes one id's day a
 * single range scan of that key, and every id's range a BRIN scan
 * (006_speed_partials_brin.sql). With `from` and `to` on whole hours the two
 * ranges select the same windows.
 */
import { foldCaseSql } from "../core/aggregate.ts";

/** Placeholders of a merged hourly query; `$1` type, `$2` from, `$3` to are fixed. */
export interface MergedHourlyParams {
  /** The id's placeholder, e.g. `"$4"`; undefined = every id. */
  readonly id?: string;
  /** The placeholder of the speed windows' fold (`sum`, `count`, `min`, `max`, `count_distinct`). */
  readonly fold: string;
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
 * The speed layer's 5-minute windows of type `$1` in [`$2`, `$3`) folded into
 * hours, as serving_hourly folds them (sql/007_complete_hours.sql): SUM for
 * sum and count, MIN / MAX for min and max; a count_distinct metric counts
 * the distinct members of the hour's visible windows (speed_distinct). The
 * branch the fold does not take is cut by a one-time filter, never scanned.
 *
 * @example
 * speedHourlySql({ id: "$4", fold: "$5" }) // SELECT date_trunc('hour', timestamp) AS timestamp, …
 */
export function speedHourlySql(p: MergedHourlyParams): string {
  return `SELECT date_trunc('hour', timestamp) AS timestamp, id, ${foldSql(p.fold)} AS value
    FROM bytes
    WHERE ${p.fold}::text <> 'count_distinct'
      AND type = $1 AND timestamp >= $2::timestamp AND timestamp < $3::timestamp${
    p.id ? ` AND id = ${p.id}` : ""
  }
    GROUP BY 1, 2
  UNION ALL
  SELECT date_trunc('hour', d."timestamp") AS timestamp, d.id,
      count(DISTINCT d.member)::bigint AS value
    FROM speed_distinct d
    JOIN speed_watermarks w ON w."partition" = d."partition" AND d.window_end <= w.watermark
    WHERE ${p.fold}::text = 'count_distinct'
      AND d.type = $1 AND d."timestamp" >= $2::timestamp AND d."timestamp" < $3::timestamp${
    p.id ? ` AND d.id = ${p.id}` : ""
  }
    GROUP BY 1, 2`;
}

/**
 * serving_hourly's rows (timestamp, id, value, source) of type `$1` in
 * [`$2`, `$3`), both whole hours: the batch value where the hour's batch is
 * current (batch_hours_current: batched, and the lake unchanged since), else
 * the folded speed windows (which stay in batched hours for a type the batch
 * layer does not compute).
 *
 * @example
 * `SELECT * FROM (${mergedHourlySql({ fold: "$5" })}) m ORDER BY timestamp, id`
 */
export function mergedHourlySql(p: MergedHourlyParams): string {
  return `SELECT h.timestamp, h.id, h.value, 'batch'::text AS source
    FROM bytes_hourly h
    WHERE h.type = $1 AND h.timestamp >= $2::timestamp AND h.timestamp < $3::timestamp${
    p.id ? ` AND h.id = ${p.id}` : ""
  }
      AND EXISTS (SELECT 1 FROM batch_hours_current bh WHERE bh.hour = h.timestamp)
  UNION ALL
  SELECT s.timestamp, s.id, s.value, 'speed'::text AS source
    FROM (${speedHourlySql(p)}) s
    WHERE NOT EXISTS (
      SELECT 1 FROM batch_hours_current bh
      JOIN metric_catalog bc ON bc.layer = 'batch' AND bc.type = $1
      WHERE bh.hour = s.timestamp)`;
}
