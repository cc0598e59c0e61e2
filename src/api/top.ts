/**
 * `GET /api/v1/metrics/:metric/top`: the ids with the largest totals over a
 * range of hours, from the merged hourly series (serving_hourly's rows).
 * Totals combine hours with the metric's own rule (sum for sum/count, min,
 * max), as the views fold windows.
 */
import type { ApiContext } from "./context.ts";
import { DAY_MS, FROM_PARAM, iso, limitParam, parseRange, TO_PARAM, wholeHours } from "./params.ts";
import { METRIC_PARAM, type RouteDef } from "./route.ts";
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

const LIMIT = limitParam("How many ids (1-1000).", 10, 1000);

export function topRoutes(ctx: ApiContext): RouteDef[] {
  return [{
    method: "GET",
    path: "/api/v1/metrics/:metric/top",
    operationId: "getTop",
    tag: "data",
    summary: "The top-N ids of a metric by total value over a range of hours (merged view).",
    params: [METRIC_PARAM, FROM_PARAM, TO_PARAM, LIMIT],
    responses: {
      200: "`{ metric, from, to, top: [{ id, total, hours, batchHours }] }`",
      400: "A bad parameter.",
      404: "Unknown metric.",
    },
    handler: async (c) => {
      const m = requireMetric(ctx, c.req.param("metric") ?? "");
      const limit = LIMIT.read(c.req.query("limit"));
      const { from, to } = wholeHours(
        parseRange((n) => c.req.query(n), {
          defaultMs: DAY_MS,
          maxMs: 366 * DAY_MS,
          now: ctx.clock(),
        }),
      );
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
