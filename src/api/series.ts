/**
 * `GET /api/v1/metrics/:metric/series`: one metric's values over time, from
 * the serving views (merged: batch where the hour is batched, else speed;
 * hourly from the views' tables, see _serving_sql.ts), the batch table alone,
 * or the speed windows alone. Live: the windows still filling are points too,
 * with `final: false` (sql/013_live_windows.sql), so the first numbers show
 * within the first flush, not once the watermark passes a window's end. Every
 * SQL text is a constant picked by the (source, granularity, with id,
 * stand-in) combination, so the planner sees `id = $4` whenever an id is
 * given and keeps to the index.
 */
import { UserError } from "../errors.ts";
import type { ApiContext, MetricInfo } from "./context.ts";
import {
  choiceParam,
  DAY_MS,
  FROM_PARAM,
  iso,
  parseRange,
  textParam,
  TO_PARAM,
  wholeHours,
} from "./params.ts";
import { METRIC_PARAM, type RouteDef } from "./route.ts";
import { isoOf, numOf, requireMetric } from "./_util.ts";
import {
  mergedHourlySql,
  speedHourlySql,
  standInOf,
  standInShape,
  standInShapes,
  type StandInSql,
  standInValues,
} from "./_serving_sql.ts";

export type Granularity = "5m" | "1h";
export type Source = "merged" | "batch" | "speed";

/** Longest range per granularity: a month of windows, a year of hours. */
export const MAX_RANGE_MS: Record<Granularity, number> = { "5m": 31 * DAY_MS, "1h": 366 * DAY_MS };
/** Points returned without an id before the answer says `truncated`. */
export const MAX_POINTS = 100_000;

/**
 * [source, granularity] → SQL with `$4 = id`; `$5` = fold aggregation where
 * used, `$6` the stand-in metric and `$7` the key of unknown devices (see
 * `standInOf`) in the `merged/1h+<shape>` keys. merged/1h reads serving_hourly's rows
 * from its tables (_serving_sql.ts) so the speed windows are picked by their
 * raw timestamp: one id's day is one range of the speed_partials key.
 */
function sqlOne(): Record<string, string> {
  const range = "type = $1 AND timestamp >= $2::timestamp AND timestamp < $3::timestamp";
  return {
    "merged/1h": `${mergedHourlySql({ id: "$4", fold: "$5" })}
    ORDER BY timestamp`,
    ...standInVariants((standIn) =>
      `${mergedHourlySql({ id: "$4", fold: "$5", standIn })}
    ORDER BY timestamp`
    ),
    "merged/5m": `SELECT timestamp, id, value, source, final FROM serving_5m_live
    WHERE ${range} AND id = $4
    ORDER BY timestamp`,
    "batch/1h": `SELECT timestamp, id, value, 'batch' AS source, true AS final FROM bytes_hourly
    WHERE ${range} AND id = $4
    ORDER BY timestamp`,
    "speed/5m": `SELECT timestamp, id, value, 'speed' AS source, final FROM bytes_live
    WHERE ${range} AND id = $4
    ORDER BY timestamp`,
    "speed/1h": `SELECT timestamp, id, value, 'speed' AS source, final
    FROM (${speedHourlySql({ id: "$4", fold: "$5" })}) s
    ORDER BY timestamp`,
  };
}

/** Same without an id: every id, `$4` = row limit (one more than returned). */
function sqlAll(): Record<string, string> {
  const range = "type = $1 AND timestamp >= $2::timestamp AND timestamp < $3::timestamp";
  return {
    "merged/1h": `${mergedHourlySql({ fold: "$5" })}
    ORDER BY timestamp, id LIMIT $4`,
    ...standInVariants((standIn) =>
      `${mergedHourlySql({ fold: "$5", standIn })}
    ORDER BY timestamp, id LIMIT $4`
    ),
    "merged/5m": `SELECT timestamp, id, value, source, final FROM serving_5m_live
    WHERE ${range}
    ORDER BY timestamp, id LIMIT $4`,
    "batch/1h": `SELECT timestamp, id, value, 'batch' AS source, true AS final FROM bytes_hourly
    WHERE ${range}
    ORDER BY timestamp, id LIMIT $4`,
    "speed/5m": `SELECT timestamp, id, value, 'speed' AS source, final FROM bytes_live
    WHERE ${range}
    ORDER BY timestamp, id LIMIT $4`,
    "speed/1h": `SELECT timestamp, id, value, 'speed' AS source, final
    FROM (${speedHourlySql({ fold: "$5" })}) s
    ORDER BY timestamp, id LIMIT $4`,
  };
}

/** merged/1h of a batch-only metric per stand-in shape (`merged/1h+<shape>`). */
function standInVariants(sql: (s: StandInSql) => string): Record<string, string> {
  return Object.fromEntries(standInShapes(6).map(([shape, p]) => [`merged/1h+${shape}`, sql(p)]));
}

const SQL_ONE = sqlOne();
const SQL_ALL = sqlAll();

/** The queries that take the speed windows' fold as `$5`. */
const FOLDED = (key: string) => key.startsWith("merged/1h") || key === "speed/1h";

const ID = textParam(
  "id",
  "Group key (e.g. an antenna id); an id with no rows (yet) is an empty series.",
);
const GRANULARITY = choiceParam<Granularity, Granularity>(
  "granularity",
  "5m (speed windows; ranges up to 31 days) or 1h (up to 366 days).",
  ["5m", "1h"],
  "1h",
);
const SOURCE = choiceParam<Source, Source>(
  "source",
  "merged (serving views, open windows included), batch (bytes_hourly) or speed (bytes, " +
    "open windows included).",
  ["merged", "batch", "speed"],
  "merged",
);

interface PointRow {
  timestamp: Date;
  id: string;
  value: unknown;
  source: string;
  final: boolean;
}

/**
 * Refuses combinations the layers cannot answer, naming the parameter at
 * fault: 404, as for an unknown metric, since each depends on the metric and
 * names a series that does not exist (no document can say it beforehand).
 */
function checkCombination(m: MetricInfo, source: Source, granularity: Granularity): void {
  if (source === "batch" && !m.layers.includes("batch")) {
    throw new UserError(
      `source: metric "${m.name}" is not computed by the batch layer (layers: ${m.layers})`,
      { status: 404 },
    );
  }
  if (source === "speed" && !m.layers.includes("speed")) {
    throw new UserError(
      `source: metric "${m.name}" is not computed by the speed layer (layers: ${m.layers})`,
      { status: 404 },
    );
  }
  if (granularity === "5m" && (source === "batch" || !m.layers.includes("speed"))) {
    throw new UserError(
      `granularity: 5m needs the speed layer's windows; use 1h for ${
        source === "batch" ? "source=batch" : `metric "${m.name}" (batch only)`
      }`,
      { status: 404 },
    );
  }
}

export function seriesRoutes(ctx: ApiContext): RouteDef[] {
  return [{
    method: "GET",
    path: "/api/v1/metrics/:metric/series",
    operationId: "getSeries",
    tag: "data",
    summary: "A metric's series: merged (batch where batched, else speed), batch or speed.",
    description: "Hourly ranges are widened to whole hours. Without `id`, every id of the " +
      `metric is returned, at most ${MAX_POINTS} points (then \`truncated\` is true). ` +
      "Live: a window or hour still filling is a point with `final: false` (its value so " +
      "far, exact up to the speed layer's last flush); `final: true` once every partition's " +
      "watermark passed its end plus the allowed lateness (no late event changes it), or once " +
      "batched. Each point names its `source` (speed or " +
      "batch); hours of a batch-only metric not batched yet come from the speed metric it " +
      "reconciles with when that one counts the same thing (per device: joined to users).",
    params: [METRIC_PARAM, ID, FROM_PARAM, TO_PARAM, GRANULARITY, SOURCE],
    responses: {
      200: "`{ metric, granularity, source, from, to, points: [{ timestamp, id, value, " +
        "source, final }] }`; `points[].source` is `speed` or `batch`, `points[].final` a " +
        "boolean (false: the window or hour is still filling).",
      400: "A bad parameter; the message names it.",
      404: "Unknown metric, a source that does not compute it, or 5m windows of a batch-only " +
        "series.",
    },
    handler: async (c) => {
      const m = requireMetric(ctx, c.req.param("metric") ?? "");
      const q = (n: string) => c.req.query(n);
      const granularity = GRANULARITY.read(q("granularity"));
      const source = SOURCE.read(q("source"));
      const id = ID.read(q("id"));
      checkCombination(m, source, granularity);
      const range = parseRange(q, {
        defaultMs: DAY_MS,
        maxMs: MAX_RANGE_MS[granularity],
        now: ctx.clock(),
      });
      const { from, to } = granularity === "1h" ? wholeHours(range) : range;
      const standIn = source === "merged" && granularity === "1h"
        ? standInOf(ctx.plan, m.name)
        : undefined;
      const key = `${source}/${granularity}${standIn ? `+${standInShape(standIn)}` : ""}`;
      const fold = m.speedAggregation ?? m.aggregation;
      const params: unknown[] = [m.name, new Date(from), new Date(to)];
      params.push(id ?? MAX_POINTS + 1);
      if (FOLDED(key)) params.push(fold);
      if (standIn) params.push(...standInValues(standIn));
      let rows = await ctx.db.query<PointRow>((id === undefined ? SQL_ALL : SQL_ONE)[key], params);
      let truncated = false;
      if (id === undefined && rows.length > MAX_POINTS) {
        rows = rows.slice(0, MAX_POINTS);
        truncated = true;
      }
      return c.json({
        metric: m.name,
        granularity,
        source,
        from: iso(from),
        to: iso(to),
        ...(id === undefined ? { truncated } : { id }),
        points: rows.map((r) => ({
          timestamp: isoOf(r.timestamp),
          id: r.id,
          value: numOf(r.value),
          source: r.source,
          final: r.final,
        })),
      });
    },
  }];
}
