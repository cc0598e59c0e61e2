/**
 * The speed layer's tables as the serving layer reads them, live: SQL
 * fragments the API composes its statements from (src/api/_serving_sql.ts),
 * so the text naming speed_partials, speed_distinct, speed_metrics and
 * speed_watermarks stays in this folder. The fragments select windows by
 * their raw "timestamp", which the speed_partials key (type, id, "timestamp")
 * and its BRIN index (006_speed_partials_brin.sql) serve: a range on the
 * folded hour could not. Their text is tuned (tests/db/serving_views_test.ts
 * checks the plans): change it only with those checks.
 */
import { foldCaseSql } from "../core/aggregate.ts";
import { userKeySql } from "../db/mod.ts";

/** Placeholders of the speed windows' hourly fold; `$1` type, `$2` from, `$3` to are fixed. */
export interface SpeedHourlyParams {
  /** The id's placeholder, e.g. `"$4"`; undefined = every id. */
  readonly id?: string;
  /** The placeholder of the windows' fold (`sum`, `count`, `min`, `max`, `count_distinct`). */
  readonly fold: string;
}

/**
 * A batch-only metric's stand-in as placeholders, e.g.
 * `{ type: "$6", user: "email", unknownId: "$7" }` (see src/api's `standInOf`).
 */
export interface StandInSql {
  /** The speed metric's placeholder. */
  readonly type: string;
  /** The user column the batch metric groups by; undefined = the windows' own key. */
  readonly user?: "email" | "name";
  /** The placeholder of the key of devices without a user; undefined = left out. */
  readonly unknownId?: string;
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
export function speedHourlySql(p: SpeedHourlyParams): string {
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
 * A batch-only metric's hours in [`$2`, `$3`) from its stand-in's windows
 * (sum and count only: both fold by SUM), keyed as the batch layer keys them
 * (per user: the user's column, from src/db's users). Columns as
 * `speedHourlySql`.
 */
export function standInHourlySql(s: StandInSql, id: string | undefined): string {
  const { key, join } = s.user
    ? userKeySql("p.id", s.user, s.unknownId)
    : { key: "p.id", join: "" };
  return `SELECT date_trunc('hour', p."timestamp") AS timestamp, ${key} AS id,
      sum(p.value)::bigint AS value, ${hourFinal("p")} AS final
    FROM speed_partials p
    ${join}
    LEFT JOIN speed_metrics m ON m.type = p.type
    LEFT JOIN speed_watermarks w ON w."partition" = p."partition"
    WHERE p.type = ${s.type}::text AND p."timestamp" >= $2::timestamp
      AND p."timestamp" < $3::timestamp${id ? ` AND ${key} = ${id}` : ""}
    GROUP BY 1, 2`;
}
