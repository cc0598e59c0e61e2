/**
 * `GET /api/v1/config` (the active plan, secrets masked, with its generation,
 * hash, the last rejected reload and the backfills' progress) and
 * `GET /api/v1/metrics` (the metrics the plan declares, per layer).
 */
import { planHash, redactPlan } from "../config/mod.ts";
import type { ApiContext } from "./context.ts";
import type { RouteDef } from "./route.ts";

export function configRoutes(ctx: ApiContext): RouteDef[] {
  return [
    {
      method: "GET",
      path: "/api/v1/config",
      operationId: "getConfig",
      tag: "config",
      summary: "The active pipeline plan (secrets masked), its generation and content hash, " +
        "the last rejected reload with its problems, and the progress of backfills.",
      responses: {
        200: "The plan's sections (see docs/config-reference.md) and `generation`, `hash`, " +
          "`appliedAt`, `rejected` (null, or `{ at, result, problems: [{ file, line, col, path, " +
          "message, text }] }`), `lastReload` and `backfill` (null when not running).",
      },
      handler: async (c) => {
        const status = ctx.config?.status();
        const backfill = ctx.backfill ? await ctx.backfill.status() : null;
        const iso = (ms: number) => new Date(ms).toISOString();
        return c.json({
          ...(redactPlan(ctx.plan) as Record<string, unknown>),
          generation: status?.generation ?? 1,
          hash: status?.hash ?? planHash(ctx.plan),
          appliedAt: status ? iso(status.appliedAt) : null,
          rejected: status?.rejected ? { ...status.rejected, at: iso(status.rejected.at) } : null,
          lastReload: status?.last ? { ...status.last, at: iso(status.last.at) } : null,
          backfill,
        });
      },
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
