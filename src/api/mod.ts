/**
 * Front door of the serving layer's HTTP API: `createApp(deps)` takes the
 * plan, the database, the metrics registry and (optionally) the running
 * layers, and returns a Hono app. Routes come from one table (one file per
 * resource); the same table drives the router and `/openapi.json`. Errors
 * are mapped in one place: a `UserError` carries its HTTP status (bad input
 * 400, unknown 404, busy hour 409 …); anything else is a 500 with no detail.
 *
 * @example
 * const app = createApp({ plan, db, registry, store, speed, batch, source });
 * Deno.serve({ hostname: plan.api.host, port: plan.api.port }, app.fetch);
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { UserError } from "../errors.ts";
import { writeGuard } from "./auth.ts";
import { batchRunRoutes } from "./batch_runs.ts";
import { configRoutes } from "./config.ts";
import { type ApiContext, apiContext, type AppDeps } from "./context.ts";
import { deadLetterRoutes } from "./dead_letters.ts";
import { healthRoutes } from "./health.ts";
import { hoursRoutes } from "./hours.ts";
import { matchedRoute, metricsRoutes, requestMetrics } from "./metrics.ts";
import { openApiRoutes } from "./openapi.ts";
import { quotaRoutes } from "./quota.ts";
import { quotaAlertRoutes } from "./quota_alerts.ts";
import { reconciliationRoutes } from "./reconciliation.ts";
import type { RouteDef } from "./route.ts";
import { seriesRoutes } from "./series.ts";
import { topRoutes } from "./top.ts";

export { apiContext } from "./context.ts";
export type {
  ApiContext,
  AppDeps,
  BatchControl,
  MetricInfo,
  SourceProbe,
  SpeedStatusSource,
} from "./context.ts";
export type { RouteDef } from "./route.ts";
export { openApiDocument, openApiPath } from "./openapi.ts";
export { isLoopback } from "./auth.ts";

/** Every route of the API, in the order they are registered and documented. */
export function routeTable(ctx: ApiContext): RouteDef[] {
  const routes: RouteDef[] = [];
  routes.push(
    ...healthRoutes(ctx),
    ...metricsRoutes(ctx),
    ...openApiRoutes(ctx, () => routes),
    ...configRoutes(ctx),
    ...seriesRoutes(ctx),
    ...topRoutes(ctx),
    ...quotaRoutes(ctx),
    ...quotaAlertRoutes(ctx),
    ...reconciliationRoutes(ctx),
    ...deadLetterRoutes(ctx),
    ...batchRunRoutes(ctx),
    ...hoursRoutes(ctx),
  );
  return routes;
}

/**
 * Every other method on a served path is 405 naming the ones that are served
 * (RFC 9110 §15.5.6), not a 404 that says the path does not exist. HEAD is
 * served wherever GET is (Hono answers it from the GET route).
 */
function allowOnly(app: Hono, routes: readonly RouteDef[]): void {
  const methods = new Map<string, Set<string>>();
  for (const r of routes) {
    const set = methods.get(r.path) ?? new Set<string>();
    set.add(r.method);
    if (r.method === "GET") set.add("HEAD");
    methods.set(r.path, set);
  }
  for (const [path, set] of methods) {
    const allow = [...set].join(", ");
    app.all(path, (c) => {
      matchedRoute.set(c, path);
      c.header("Allow", allow);
      return c.json(
        { error: `method ${c.req.method} is not allowed on ${path}; use ${allow}` },
        405,
      );
    });
  }
}

/** Builds the API. Serve it with `Deno.serve(opts, app.fetch)` so clients' addresses reach the auth check. */
export function createApp(deps: AppDeps): Hono {
  const ctx = apiContext(deps);
  const routes = routeTable(ctx);

  const app = new Hono();
  app.use(requestMetrics(ctx));
  const guard = writeGuard(ctx.plan.api.token);
  for (const r of routes) {
    app.on(r.method, r.path, async (c, next) => {
      matchedRoute.set(c, r.path);
      if (r.mutating) await guard(c, next);
      else await next();
    }, r.handler);
  }

  allowOnly(app, routes);
  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    if (err instanceof UserError) {
      return c.json({ error: err.message }, err.status as 400);
    }
    if (err instanceof HTTPException) return err.getResponse();
    ctx.log.error("request failed", { method: c.req.method, path: c.req.path, error: err });
    return c.json({ error: "internal error (logged on the server)" }, 500);
  });
  return app;
}
