/**
 * `GET /api/v1/metrics/:metric/series`: one metric's values over time, from
 * the serving views (merged: batch where the hour is batched, else speed;
 * hourly from the views' tables, see _serving_sql.ts), the batch table alone,
 * or the speed windows alone. Every SQL text is a constant picked by the
 * (source, granularity, with id) combination, so the planner sees `id = $4`
 * whenever an id is given and keeps to the index.
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
import { mergedHourlySql, speedHourlySql } from "./_serving_sql.ts";

export type Granularity = "5m" | "1h";
export type Source = "merged" | "batch" | "speed";

/** Longest range per granularity: a month of windows, a year of hours. */
export const MAX_RANGE_MS: Record<Granularity, number> = { "5m": 31 * DAY_MS, "1h": 366 * DAY_MS };
/** Points returned without an id before the answer says `truncated`. */
export const MAX_POINTS = 100_000;

/**
 * [source, granularity] → SQL with `$4 = id`; `$5` = fold aggregation where
 * used. merged/1h reads serving_hourly's rows from its tables
 * (_serving_sql.ts) so the speed windows are picked by their raw timestamp:
 * one id's day is one range of the speed_partials key.
 */
const SQL_ONE: Record<string, string> = {
  "merged/1h": `${mergedHourlySql({ id: "$4", fold: "$5" })}
    ORDER BY timestamp`,
  "merged/5m": `SELECT timestamp, id, value, source FROM serving_5m
    WHERE type = $1 AND timestamp >= $2::timestamp AND timestamp < $3::timestamp AND id = $4
    ORDER BY timestamp`,
  "batch/1h": `SELECT timestamp, id, value, 'batch' AS source FROM bytes_hourly
    WHERE type = $1 AND timestamp >= $2::timestamp AND timestamp < $3::timestamp AND id = $4
    ORDER BY timestamp`,
  "speed/5m": `SELECT timestamp, id, value, 'speed' AS source FROM bytes
    WHERE type = $1 AND timestamp >= $2::timestamp AND timestamp < $3::timestamp AND id = $4
    ORDER BY timestamp`,
  "speed/1h": `SELECT timestamp, id, value, 'speed' AS source
    FROM (${speedHourlySql({ id: "$4", fold: "$5" })}) s
    ORDER BY timestamp`,
};

/** Same without an id: every id, `$4` = row limit (one more than returned). */
const SQL_ALL: Record<string, string> = {
  "merged/1h": `${mergedHourlySql({ fold: "$5" })}
    ORDER BY timestamp, id LIMIT $4`,
  "merged/5m": `SELECT timestamp, id, value, source FROM serving_5m
    WHERE type = $1 AND timestamp >= $2::timestamp AND timestamp < $3::timestamp
    ORDER BY timestamp, id LIMIT $4`,
  "batch/1h": `SELECT timestamp, id, value, 'batch' AS source FROM bytes_hourly
    WHERE type = $1 AND timestamp >= $2::timestamp AND timestamp < $3::timestamp
    ORDER BY timestamp, id LIMIT $4`,
  "speed/5m": `SELECT timestamp, id, value, 'speed' AS source FROM bytes
    WHERE type = $1 AND timestamp >= $2::timestamp AND timestamp < $3::timestamp
    ORDER BY timestamp, id LIMIT $4`,
  "speed/1h": `SELECT timestamp, id, value, 'speed' AS source
    FROM (${speedHourlySql({ fold: "$5" })}) s
    ORDER BY timestamp, id LIMIT $4`,
};

/** The queries that take the speed windows' fold as `$5`. */
const FOLDED = new Set(["merged/1h", "speed/1h"]);

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
  "merged (serving views), batch (bytes_hourly) or speed (bytes).",
  ["merged", "batch", "speed"],
  "merged",
);

interface PointRow {
  timestamp: Date;
  id: string;
  value: unknown;
  source: string;
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
      `metric is returned, at most ${MAX_POINTS} points (then \`truncated\` is true).`,
    params: [METRIC_PARAM, ID, FROM_PARAM, TO_PARAM, GRANULARITY, SOURCE],
    responses: {
      200:
        "`{ metric, granularity, source, from, to, points: [{ timestamp, id, value, source }] }`",
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
      const key = `${source}/${granularity}`;
      const fold = m.speedAggregation ?? m.aggregation;
      const params: unknown[] = [m.name, new Date(from), new Date(to)];
      let rows: PointRow[];
      let truncated = false;
      if (id !== undefined) {
        params.push(id);
        if (FOLDED.has(key)) params.push(fold);
        rows = await ctx.db.query<PointRow>(SQL_ONE[key], params);
      } else {
        params.push(MAX_POINTS + 1);
        if (FOLDED.has(key)) params.push(fold);
        rows = await ctx.db.query<PointRow>(SQL_ALL[key], params);
        if (rows.length > MAX_POINTS) {
          rows = rows.slice(0, MAX_POINTS);
          truncated = true;
        }
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
        })),
      });
    },
  }];
}
