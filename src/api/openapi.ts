/**
 * `GET /openapi.json`: an OpenAPI 3.1 document generated from the route
 * table the router is built from (route.ts), so every served route is
 * documented and every documented route is served.
 */
import type { ApiContext } from "./context.ts";
import type { RouteDef, Schema } from "./route.ts";

/** `/api/v1/batch/runs/:id` → `/api/v1/batch/runs/{id}`. */
export function openApiPath(honoPath: string): string {
  return honoPath.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, "{$1}");
}

const ERROR_SCHEMA: Schema = {
  type: "object",
  required: ["error"],
  properties: { error: { type: "string", description: "One line naming what was wrong." } },
};

export function openApiDocument(ctx: ApiContext, routes: readonly RouteDef[]): Schema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const p = (paths[openApiPath(r.path)] ??= {});
    const responses: Record<string, unknown> = {};
    for (const [status, description] of Object.entries(r.responses)) {
      const ok = Number(status) < 400;
      responses[status] = {
        description,
        content: ok
          ? { [r.produces ?? "application/json"]: { schema: r.produces ? { type: "string" } : {} } }
          : { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
      };
    }
    p[r.method.toLowerCase()] = {
      operationId: r.operationId,
      summary: r.summary,
      ...(r.description ? { description: r.description } : {}),
      tags: [r.tag],
      ...(r.params?.length ? { parameters: r.params.map((x) => ({ ...x })) } : {}),
      ...(r.body
        ? { requestBody: { required: true, content: { "application/json": { schema: r.body } } } }
        : {}),
      ...(r.mutating ? { security: [{ bearer: [] }] } : {}),
      responses,
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "antenna-lambda serving API",
      version: "1.0.0",
      description: "Mobile-antenna telemetry: merged batch + speed series, quota breaches, " +
        "reconciliation, dead letters, batch runs, health and metrics. Times are UTC ISO-8601.",
    },
    servers: [{ url: `http://${ctx.plan.api.host}:${ctx.plan.api.port}` }],
    tags: [
      { name: "health", description: "Liveness, readiness, Prometheus." },
      { name: "data", description: "The serving layer's data." },
      { name: "config", description: "The active plan." },
      { name: "batch", description: "Batch runs." },
      { name: "docs", description: "This document." },
    ],
    paths,
    components: {
      schemas: { Error: ERROR_SCHEMA },
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    },
  };
}

/** The route serving the document; `routes` is read at request time so it includes itself. */
export function openApiRoutes(ctx: ApiContext, routes: () => readonly RouteDef[]): RouteDef[] {
  let doc: Schema | undefined;
  return [{
    method: "GET",
    path: "/openapi.json",
    operationId: "openapi",
    tag: "docs",
    summary: "This OpenAPI 3.1 document.",
    responses: { 200: "The document." },
    handler: (c) => c.json(doc ??= openApiDocument(ctx, routes())),
  }];
}
