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

/** One Server-Sent Event as schemathesis and OpenAPI 3.2 read a stream: an item per event. */
function eventItemSchema(event: string, data: Schema): Schema {
  return {
    type: "object",
    required: ["event", "data"],
    properties: {
      event: { const: event },
      id: { type: "string", pattern: "^[0-9]+$" },
      data: { type: "string", contentMediaType: "application/json", contentSchema: data },
      retry: { type: "integer", minimum: 0 },
    },
  };
}

/** The write guard's refusal that cannot happen under this configuration (auth.ts). */
function impossibleRefusal(ctx: ApiContext, r: RouteDef): string | undefined {
  if (!r.mutating) return undefined;
  return ctx.plan.api.token ? "403" : "401";
}

function responsesOf(ctx: ApiContext, r: RouteDef): Record<string, unknown> {
  const responses: Record<string, unknown> = {};
  const impossible = impossibleRefusal(ctx, r);
  for (const [status, description] of Object.entries(r.responses)) {
    if (status === impossible) continue;
    if (Number(status) >= 400) {
      responses[status] = {
        description,
        content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
      };
    } else if (r.eventData) {
      responses[status] = {
        description,
        content: {
          "text/event-stream": {
            itemSchema: eventItemSchema(r.eventData.event, r.eventData.schema),
          },
        },
      };
    } else {
      const type = r.produces ?? "application/json";
      responses[status] = {
        description,
        content: { [type]: { schema: r.produces ? { type: "string" } : {} } },
      };
    }
  }
  return responses;
}

/**
 * Who may call a mutating route, as the write guard (auth.ts) decides: with a
 * token, the bearer token; without one, anyone on loopback (so no credential
 * at all is one of the alternatives).
 */
function securityOf(ctx: ApiContext): unknown[] {
  return ctx.plan.api.token ? [{ bearer: [] }] : [{ bearer: [] }, {}];
}

function operationOf(ctx: ApiContext, r: RouteDef): Record<string, unknown> {
  const metrics = [...ctx.metrics.keys()];
  const params = r.params?.map(({ enumOf, ...p }) =>
    enumOf === "metrics" ? { ...p, schema: { ...p.schema, enum: metrics } } : { ...p }
  );
  return {
    operationId: r.operationId,
    summary: r.summary,
    ...(r.description ? { description: r.description } : {}),
    tags: [r.tag],
    ...(params?.length ? { parameters: params } : {}),
    ...(r.body
      ? { requestBody: { required: true, content: { "application/json": { schema: r.body } } } }
      : {}),
    ...(r.mutating ? { security: securityOf(ctx) } : {}),
    responses: responsesOf(ctx, r),
  };
}

export function openApiDocument(ctx: ApiContext, routes: readonly RouteDef[]): Schema {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    (paths[openApiPath(r.path)] ??= {})[r.method.toLowerCase()] = operationOf(ctx, r);
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
  // Rebuilt when a reload changes the plan: the metric names and the auth it documents.
  let doc: { plan: unknown; schema: Schema } | undefined;
  return [{
    method: "GET",
    path: "/openapi.json",
    operationId: "openapi",
    tag: "docs",
    summary: "This OpenAPI 3.1 document.",
    responses: { 200: "The document." },
    handler: (c) => {
      if (doc?.plan !== ctx.plan) doc = { plan: ctx.plan, schema: openApiDocument(ctx, routes()) };
      return c.json(doc.schema);
    },
  }];
}
