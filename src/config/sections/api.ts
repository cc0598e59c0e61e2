/**
 * `api`: the HTTP API (Hono). It listens once, at start, so none of its keys
 * reloads live (its routes read the metric lists live, see `speed.metrics`).
 */

import type { PipelineConfig } from "../types.gen.ts";
import {
  type Frozen,
  type LintRule,
  type ObjectSpec,
  restart,
  type Section,
} from "../spec_types.ts";
import { HOST } from "./_fields.ts";

const API = "the API listens once, at start";

const SPEC: ObjectSpec = {
  type: "object",
  typeName: "ApiConfig",
  description: "The HTTP API (Hono).",
  fields: {
    enabled: {
      type: "bool",
      reload: restart(API),
      description: "Serve the API in `start`.",
      default: true,
    },
    host: { ...HOST, reload: restart(API) },
    port: {
      type: "int",
      reload: restart(API),
      description: "Port.",
      default: 8080,
      min: 1,
      max: 65535,
    },
    token: {
      type: "string",
      reload: restart("the API's guard of mutating routes is set up once, at start"),
      secret: true,
      description: "Bearer token for mutating routes; unset = only loopback may mutate.",
      optional: true,
      example: "${API_TOKEN}",
    },
  },
};

const RULES: readonly LintRule<PipelineConfig>[] = [
  {
    id: "distinct_ports",
    description: "The API and the embedded database serve on different ports.",
    check(c, report) {
      if (
        c.api.enabled && c.database.url === undefined && c.database.embedded.port === c.api.port &&
        c.database.embedded.port !== 0
      ) {
        report("api.port", `port ${c.api.port} is also database.embedded.port`);
      }
    },
  },
];

function compile(c: PipelineConfig["api"]) {
  return {
    enabled: c.enabled,
    host: c.host,
    port: c.port,
    /** Bearer token for mutating routes; undefined = loopback only. */
    ...(c.token !== undefined ? { token: c.token } : {}),
  };
}

export type ApiPlan = Frozen<ReturnType<typeof compile>>;

export const api: Section<PipelineConfig["api"], ReturnType<typeof compile>> = {
  spec: SPEC,
  rules: RULES,
  compile,
};
