/**
 * The route table: every route is declared once, with its handler and the
 * facts the OpenAPI document needs (summary, parameters, responses). The
 * router registers exactly these entries and `openapi.ts` describes exactly
 * these entries, so the document cannot drift from what is served.
 */
import type { Context } from "hono";

/** JSON Schema fragment (OpenAPI 3.1 uses JSON Schema 2020-12). */
export type Schema = Record<string, unknown>;

export interface ParamDoc {
  readonly name: string;
  readonly in: "query" | "path";
  readonly description: string;
  readonly required?: boolean;
  readonly schema: Schema;
}

export interface RouteDef {
  readonly method: "GET" | "POST";
  /** Hono path syntax (`/api/v1/metrics/:metric/series`). */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly tag: string;
  readonly params?: readonly ParamDoc[];
  /** JSON Schema of the request body (JSON). */
  readonly body?: Schema;
  /** Status → description. */
  readonly responses: Readonly<Record<number, string>>;
  /** Mutating: needs the bearer token, or loopback when none is configured. */
  readonly mutating?: boolean;
  /** Content type of a 200/202 answer; default application/json. */
  readonly produces?: string;
  readonly handler: (c: Context) => Response | Promise<Response>;
}

/** Common parameter docs, shared by several routes. */
export const FROM_PARAM: ParamDoc = {
  name: "from",
  in: "query",
  description: "Start of the range (inclusive), ISO-8601; no zone means UTC.",
  schema: { type: "string", examples: ["2026-11-28T00:00:00Z"] },
};
export const TO_PARAM: ParamDoc = {
  name: "to",
  in: "query",
  description: "End of the range (exclusive), ISO-8601; default now.",
  schema: { type: "string", examples: ["2026-11-29T00:00:00Z"] },
};
export const EMAIL_PARAM: ParamDoc = {
  name: "email",
  in: "query",
  description: "Only this user.",
  schema: { type: "string" },
};
export const METRIC_PARAM: ParamDoc = {
  name: "metric",
  in: "path",
  required: true,
  description: "Metric name from pipeline.yaml (speed.metrics or batch.metrics).",
  schema: { type: "string", examples: ["antenna_bytes_total"] },
};
