/**
 * `GET /api/v1/metrics/:metric/top`: the ids with the largest totals over a
 * range of hours, from the merged hourly series (serving_hourly's rows).
 * Totals combine hours with the metric's own rule (sum for sum/count, min,
 * max), as the views fold windows.
 */
import type { ApiContext } from "./context.ts";
import { HOUR_MS, hourStart } from "../core/window.ts";
import { DAY_MS, iso, parseLimit, parseRange } from "./params.ts";
import { FROM_PARAM, METRIC_PARAM, type RouteDef, TO_PARAM } from "./route.ts";
import { numOf, requireMetric } from "./_util.ts";
import { foldSql, mergedHourlySql } from "./_serving_sql.ts";

// The merged hourly rows come from the views' tables with a raw time range
// (_serving_sql.ts), which the BRIN index on speed_partials serves; `$4` is
// the total's rule, `$6` the fold of the speed windows into hours.
const TOP_SQL = `SELECT id, ${foldSql("$4")} AS total,
    count(*)::int AS hours,
    count(*) FILTER (WHERE source = 'batch')::int AS batch_hours
  FROM (${mergedHourlySql({ fold: "$6" })}) m
  GROUP BY id
  ORDER BY total DESC, id
  LIMIT $5`;

export function topRoutes(ctx: ApiContext): RouteDef[] {
  return [{
    method: "GET",
    path: "/api/v1/metrics/:metric/top",
    operationId: "getTop",
    tag: "data",
    summary: "The top-N ids of a metric by total value over a range of hours (merged view).",
    params: [
      METRIC_PARAM,
      FROM_PARAM,
      TO_PARAM,
      {
        name: "limit",
        in: "query",
        description: "How many ids (1-1000).",
        schema: { type: "integer", minimum: 1, maximum: 1000, default: 10 },
      },
    ],
    responses: {
      200: "`{ metric, from, to, top: [{ id, total, hours, batchHours }] }`",
      400: "A bad parameter.",
      404: "Unknown metric.",
    },
    handler: async (c) => {
      const m = requireMetric(ctx, c.req.param("metric") ?? "");
      const limit = parseLimit("limit", c.req.query("limit"), 10, 1000);
      let { from, to } = parseRange((n) => c.req.query(n), {
        defaultMs: DAY_MS,
        maxMs: 366 * DAY_MS,
        now: ctx.clock(),
      });
      from = hourStart(from);
      to = Math.ceil(to / HOUR_MS) * HOUR_MS;
      const rows = await ctx.db.query<
        { id: string; total: unknown; hours: number; batch_hours: number }
      >(TOP_SQL, [
        m.name,
        new Date(from),
        new Date(to),
        m.aggregation,
        limit,
        m.speedAggregation ?? m.aggregation,
      ]);
      return c.json({
        metric: m.name,
        from: iso(from),
        to: iso(to),
        top: rows.map((r) => ({
          id: r.id,
          total: numOf(r.total),
          hours: r.hours,
          batchHours: r.batch_hours,
        })),
      });
    },
  }];
}
