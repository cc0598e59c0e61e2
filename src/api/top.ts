/**
 * `GET /api/v1/metrics/:metric/top`: the ids with the largest totals over a
 * range of hours, from the merged hourly series (serving_hourly's rows, live:
 * open windows included, see _serving_sql.ts). Totals combine hours with the
 * metric's own rule (sum for sum/count, min, max), as the views fold windows.
 * Hours not batched yet come from the speed layer, also for a batch-only
 * metric (email_bytes_total) through its stand-in, so a new install has a top
 * list from the first minute rather than after the first batch (H+1h+grace).
 */
import type { ApiContext } from "./context.ts";
import { DAY_MS, FROM_PARAM, iso, limitParam, parseRange, TO_PARAM, wholeHours } from "./params.ts";
import { METRIC_PARAM, type RouteDef } from "./route.ts";
import { numOf, requireMetric } from "./_util.ts";
import {
  foldSql,
  mergedHourlySql,
  standInOf,
  standInShape,
  standInShapes,
  type StandInSql,
  standInValues,
} from "./_serving_sql.ts";

// The merged hourly rows come from the views' tables with a raw time range
// (_serving_sql.ts), which the BRIN index on speed_partials serves; `$4` is
// the total's rule, `$6` the fold of the speed windows into hours, `$7` and
// `$8` a batch-only metric's stand-in and the key of unknown devices.
const topSql = (standIn?: StandInSql) =>
  `SELECT id, ${foldSql("$4")} AS total,
    count(*)::int AS hours,
    count(*) FILTER (WHERE source = 'batch')::int AS batch_hours,
    bool_and(final) AS final
  FROM (${mergedHourlySql({ fold: "$6", standIn })}) m
  GROUP BY id
  ORDER BY total DESC, id
  LIMIT $5`;

/** One SQL text per stand-in shape, so each is prepared once. */
const TOP_SQL = new Map<string, string>([
  ["", topSql()],
  ...standInShapes(7).map(([shape, p]): [string, string] => [shape, topSql(p)]),
]);

const LIMIT = limitParam("How many ids (1-1000).", 10, 1000);

export function topRoutes(ctx: ApiContext): RouteDef[] {
  return [{
    method: "GET",
    path: "/api/v1/metrics/:metric/top",
    operationId: "getTop",
    tag: "data",
    summary: "The top-N ids of a metric by total value over a range of hours (merged view).",
    description: "Hours not batched yet come from the speed layer, open windows included; for " +
      "a batch-only metric, from the speed metric it reconciles with when that one counts the " +
      "same thing (per device: joined to user_metadata, e.g. email_bytes_total from " +
      "user_bytes_total).",
    params: [METRIC_PARAM, FROM_PARAM, TO_PARAM, LIMIT],
    responses: {
      200: "`{ metric, from, to, top: [{ id, total, hours, batchHours, speedHours, final }] }`: " +
        "`batchHours` of the `hours` came from the batch layer, `speedHours` from the speed " +
        "layer (hours not batched yet, open windows included); `final` is false while one of " +
        "them still fills.",
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
      const standIn = standInOf(ctx.plan, m.name);
      const rows = await ctx.db.query<
        { id: string; total: unknown; hours: number; batch_hours: number; final: boolean }
      >(TOP_SQL.get(standIn ? standInShape(standIn) : "")!, [
        m.name,
        new Date(from),
        new Date(to),
        m.aggregation,
        limit,
        m.speedAggregation ?? m.aggregation,
        ...(standIn ? standInValues(standIn) : []),
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
          speedHours: r.hours - r.batch_hours,
          final: r.final,
        })),
      });
    },
  }];
}
