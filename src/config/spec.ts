/**
 * The pipeline.yaml spec, assembled from its sections: each top-level key's
 * fields, rules and compile step live in `sections/<key>.ts` (the field group
 * both metric lists share in `sections/metrics.ts`). The linter validates
 * against this, the reload table and the plan types derive from it, and
 * `deno task gen` renders `types.gen.ts`, `docs/config-reference.md` and
 * `docs/pipeline.schema.json` from it. Adding a setting means adding it to
 * its section file (see docs/developing.md).
 */

import type { PipelineConfig } from "./types.gen.ts";
import type { LintRule, ObjectSpec } from "./spec_types.ts";
import { api } from "./sections/api.ts";
import { batch } from "./sections/batch.ts";
import { database } from "./sections/database.ts";
import { lake } from "./sections/lake.ts";
import { METRIC_RULES } from "./sections/metrics.ts";
import { schema } from "./sections/schema.ts";
import { source } from "./sections/source.ts";
import { speed } from "./sections/speed.ts";

/** Every section, in the order of pipeline.yaml, the docs and the reload table. */
export const SECTIONS = { source, schema, speed, lake, batch, database, api } as const;

/** The whole pipeline.yaml. */
export const PIPELINE_SPEC: ObjectSpec = {
  type: "object",
  typeName: "PipelineConfig",
  description: "The pipeline: source → speed layer → lake → batch layer → database → API.",
  fields: Object.fromEntries(Object.entries(SECTIONS).map(([key, s]) => [key, s.spec])),
};

/** Cross-field rules, run after every field is checked on its own. */
export const RULES: readonly LintRule<PipelineConfig>[] = [
  ...METRIC_RULES,
  ...Object.values(SECTIONS).flatMap((s) => s.rules),
];
