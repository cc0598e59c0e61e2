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
  /** The document adds `enum`: the names of the active plan's metrics. */
  readonly enumOf?: "metrics";
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
  /** JSON Schema of one Server-Sent Event's `data` (produces text/event-stream). */
  readonly eventData?: { readonly event: string; readonly schema: Schema };
  /** Content type of a 200/202 answer; default application/json. */
  readonly produces?: string;
  readonly handler: (c: Context) => Response | Promise<Response>;
}

/** The metric named in the path: the document lists the active plan's metrics. */
export const METRIC_PARAM: ParamDoc = {
  name: "metric",
  in: "path",
  required: true,
  description: "Metric name from pipeline.yaml (speed.metrics or batch.metrics).",
  schema: { type: "string", examples: ["antenna_bytes_total"] },
  enumOf: "metrics",
};
