/**
 * Compiles a linted, resolved config into the frozen `Plan` every layer runs
 * from, by running each section's compile step (sections/<key>.ts) with the
 * folder relative paths resolve against. It assumes the linter found no
 * problem, so it only maps; it never validates.
 */

import { dirname, resolve } from "node:path";
import type { Plan } from "./plan.ts";
import { SECTIONS } from "./spec.ts";
import type { CompileContext } from "./spec_types.ts";
import type { PipelineConfig } from "./types.gen.ts";

/** Where the built-in pipeline "comes from" in `Plan.file` and in problems. */
export const DEFAULTS_FILE = "<defaults>";

/** Freezes `value` and everything reachable from it. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * The frozen plan of a resolved config. `file` is the config's absolute path
 * (relative paths resolve against its folder) or `DEFAULTS_FILE` (against the
 * working directory).
 */
export function compilePlan(c: PipelineConfig, file: string): Plan {
  const context: CompileContext = {
    config: c,
    baseDir: file === DEFAULTS_FILE ? Deno.cwd() : dirname(resolve(file)),
  };
  const s = SECTIONS;
  const plan = {
    file: file === DEFAULTS_FILE ? file : resolve(file),
    source: s.source.compile(c.source, context),
    schema: s.schema.compile(c.schema, context),
    speed: s.speed.compile(c.speed, context),
    lake: s.lake.compile(c.lake, context),
    batch: s.batch.compile(c.batch, context),
    database: s.database.compile(c.database, context),
    api: s.api.compile(c.api, context),
  };
  return deepFreeze(plan);
}
