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
import { requireMetric } from "./_util.ts";
import { readReconciliation } from "../batch/mod.ts";

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
      const rows = await readReconciliation(ctx.db, from, to, metric);
      return c.json({
        from: iso(from),
        to: iso(to),
        hours: rows.map((r) => ({ ...r, hour: iso(r.hour) })),
      });
    },
  }];
}
