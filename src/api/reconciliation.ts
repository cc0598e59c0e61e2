/**
 * `GET /api/v1/reconciliation`: per hour and batch metric, the batch total,
 * the sum of the speed windows it reconciles with, their difference, the
 * parts of it explained by the speed layer's late-dropped events and by the
 * batch's dropped rows of unknown devices, and the rest (non-zero means data
 * went missing).
 */
import type { ApiContext } from "./context.ts";
import { DAY_MS, FROM_PARAM, iso, parseRange, TO_PARAM } from "./params.ts";
import type { RouteDef } from "./route.ts";
import { isoOf, numOf, requireMetric } from "./_util.ts";

const COLUMNS =
  "hour, metric, speed_metric, batch_value, speed_value, difference, late_dropped, unknown_dropped, unexplained";
const SQL = `SELECT ${COLUMNS}
  FROM batch_reconciliation
  WHERE hour >= $1::timestamp AND hour < $2::timestamp
  ORDER BY hour, metric`;
const SQL_METRIC = `SELECT ${COLUMNS}
  FROM batch_reconciliation
  WHERE hour >= $1::timestamp AND hour < $2::timestamp AND metric = $3
  ORDER BY hour`;

interface Row {
  hour: Date;
  metric: string;
  speed_metric: string;
  batch_value: unknown;
  speed_value: unknown;
  difference: unknown;
  late_dropped: unknown;
  unknown_dropped: unknown;
  unexplained: unknown;
}

export function reconciliationRoutes(ctx: ApiContext): RouteDef[] {
  return [{
    method: "GET",
    path: "/api/v1/reconciliation",
    operationId: "getReconciliation",
    tag: "data",
    summary: "Per hour and metric: batch total vs the speed layer's windows, and the difference.",
    params: [
      FROM_PARAM,
      TO_PARAM,
      {
        name: "metric",
        in: "query",
        description: "Only this metric.",
        schema: { type: "string" },
        enumOf: "metrics",
      },
    ],
    responses: {
      200:
        "`{ from, to, hours: [{ hour, metric, speedMetric, batchValue, speedValue, difference, lateDropped, unknownDropped, unexplained }] }`",
      400: "A bad parameter.",
      404: "Unknown metric.",
    },
    handler: async (c) => {
      const q = (n: string) => c.req.query(n);
      const metricName = q("metric");
      const metric = metricName === undefined ? undefined : requireMetric(ctx, metricName).name;
      const { from, to } = parseRange(q, {
        defaultMs: 7 * DAY_MS,
        maxMs: 366 * DAY_MS,
        now: ctx.clock(),
      });
      const params: unknown[] = [new Date(from), new Date(to)];
      if (metric !== undefined) params.push(metric);
      const rows = await ctx.db.query<Row>(metric === undefined ? SQL : SQL_METRIC, params);
      return c.json({
        from: iso(from),
        to: iso(to),
        hours: rows.map((r) => ({
          hour: isoOf(r.hour),
          metric: r.metric,
          speedMetric: r.speed_metric,
          batchValue: numOf(r.batch_value),
          speedValue: numOf(r.speed_value),
          difference: numOf(r.difference),
          lateDropped: numOf(r.late_dropped),
          unknownDropped: numOf(r.unknown_dropped),
          unexplained: numOf(r.unexplained),
        })),
      });
    },
  }];
}
