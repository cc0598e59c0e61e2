/**
 * Prometheus: `GET /metrics` renders the process registry (speed, batch,
 * lake and API metrics), and `requestMetrics` counts and times every request
 * by route pattern, method and status. Gauges that only the speed layer's
 * status knows (consumer lag and watermark per partition) and the batch
 * scheduler's last completed hour are refreshed at scrape time, so they are
 * as fresh as the scrape without a timer of their own.
 */
import type { Context, MiddlewareHandler } from "hono";
import { speedTelemetry } from "../speed/mod.ts";
import type { ApiContext } from "./context.ts";
import type { RouteDef } from "./route.ts";
import { withTimeout } from "./_util.ts";

/** The route pattern a request matched, set by a per-route middleware in mod.ts. */
export const matchedRoute = new WeakMap<Context, string>();

// Request latencies of a JSON API: finer below 50 ms, the benchmark's target.
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Counts and times each request; unmatched paths share one label (no cardinality blow-up). */
export function requestMetrics(ctx: ApiContext): MiddlewareHandler {
  const requests = ctx.registry.counter(
    "api_requests_total",
    "HTTP requests answered by the API, by route, method and status.",
  );
  const duration = ctx.registry.histogram(
    "api_request_duration_seconds",
    "Time to answer an HTTP request, by route, method and status.",
    LATENCY_BUCKETS,
  );
  return async (c, next) => {
    const t0 = performance.now();
    try {
      await next();
    } finally {
      const labels = {
        route: matchedRoute.get(c) ?? "unmatched",
        method: c.req.method,
        status: c.res.status,
      };
      requests.inc(labels);
      duration.observe((performance.now() - t0) / 1000, labels);
    }
  };
}

/** Sets the gauges only a status call knows, just before rendering. */
async function refreshGauges(ctx: ApiContext): Promise<void> {
  if (ctx.speed) {
    const t = speedTelemetry(ctx.registry);
    for (const p of ctx.speed.status().partitions) {
      t.lag.set(p.lag, { partition: p.partition });
      if (p.watermarkMs !== null) t.watermark.set(p.watermarkMs / 1000, { partition: p.partition });
      if (p.committedOffset >= 0) {
        t.committedOffset.set(p.committedOffset, { partition: p.partition });
      }
    }
  }
  if (ctx.batch) {
    try {
      // Sets the oldest-incomplete-hour and stale-hours gauges (src/batch/telemetry.ts).
      await withTimeout(ctx.batch.hoursSummary(), ctx.probeTimeoutMs, "batch");
      const last = await withTimeout(ctx.batch.lastCompletedHour(), ctx.probeTimeoutMs, "batch");
      if (last !== undefined) {
        ctx.registry.gauge(
          "batch_last_completed_hour_seconds",
          "Start of the newest hour the batch layer completed, epoch seconds.",
        ).set(last / 1000);
      }
    } catch (e) {
      // A scrape must not fail because PostgreSQL is slow: the gauge keeps its last value.
      ctx.log.warn("metrics: could not read the last completed hour", { error: e });
    }
  }
}

export function metricsRoutes(ctx: ApiContext): RouteDef[] {
  return [{
    method: "GET",
    path: "/metrics",
    operationId: "prometheusMetrics",
    tag: "health",
    summary: "Prometheus text format: speed, batch, lake and API metrics.",
    produces: "text/plain; version=0.0.4",
    responses: { 200: "Prometheus text exposition format 0.0.4." },
    handler: async (c) => {
      await refreshGauges(ctx);
      return c.body(ctx.registry.render(), 200, {
        "Content-Type": "text/plain; version=0.0.4; charset=utf-8",
      });
    },
  }];
}
