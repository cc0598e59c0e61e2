/**
 * `GET /api/v1/config` (the active plan, secrets masked) and
 * `GET /api/v1/metrics` (the metrics the plan declares, per layer).
 */
import { redactPlan } from "../config/mod.ts";
import type { ApiContext } from "./context.ts";
import type { RouteDef } from "./route.ts";

export function configRoutes(ctx: ApiContext): RouteDef[] {
  return [
    {
      method: "GET",
      path: "/api/v1/config",
      operationId: "getConfig",
      tag: "config",
      summary: "The active pipeline plan, with passwords and the API token masked.",
      responses: { 200: "The plan (see docs/config-reference.md)." },
      handler: (c) => c.json(redactPlan(ctx.plan) as Record<string, unknown>),
    },
    {
      method: "GET",
      path: "/api/v1/metrics",
      operationId: "listMetrics",
      tag: "config",
      summary: "The metrics declared in pipeline.yaml: name, layers, group_by, aggregation.",
      responses: {
        200:
          "`{ metrics: [{ name, layers, groupBy, aggregation, field, description, reconcileWith }] }`",
      },
      handler: (c) =>
        c.json({
          metrics: [...ctx.metrics.values()].map((m) => ({
            name: m.name,
            layers: m.layers,
            groupBy: m.groupBy,
            aggregation: m.aggregation,
            field: m.field,
            description: m.description ?? null,
            reconcileWith: m.reconcileWith ?? null,
          })),
        }),
    },
  ];
}
