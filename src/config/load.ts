/**
 * Load, check, compile: reads a pipeline file (or the built-in defaults),
 * lints it against the spec and compiles it into a frozen Plan, or throws a
 * `ConfigError` listing every problem.
 */

import { resolve } from "node:path";
import { compilePlan, DEFAULTS_FILE } from "./compile.ts";
import type { Env } from "./interpolate.ts";
import { analyzeYaml } from "./lint.ts";
import type { Plan } from "./plan.ts";
import { ConfigError, type Problem } from "./problem.ts";
import { UserError } from "../errors.ts";

export interface PlanOptions {
  /** Variables for `${VAR}`; default: the process environment. */
  readonly env?: Env;
}

/** The default config file, looked up in the working directory. */
export const DEFAULT_PATH = "pipeline.yaml";

function processEnv(): Env {
  try {
    return Deno.env.toObject();
  } catch {
    // Without --allow-env every variable reads as unset, so defaults apply.
    return {};
  }
}

/**
 * Compiles pipeline YAML text. `file` names it in problems and anchors relative
 * paths (default: `<defaults>`, i.e. the working directory).
 *
 * @example planFromYaml("speed:\n  window: 10m\n", { env: {} }).speed.windowMs // 600_000
 */
export function planFromYaml(text: string, opts: PlanOptions & { file?: string } = {}): Plan {
  const file = opts.file ?? DEFAULTS_FILE;
  const { config, problems } = analyzeYaml(text, file, opts.env ?? processEnv());
  if (problems.length > 0) throw new ConfigError(problems);
  return compilePlan(config, file);
}

/**
 * Loads `path` (default `./pipeline.yaml` when it exists, else the built-in
 * defaults) and compiles it. Throws `ConfigError` with every problem.
 */
export async function loadPlan(path?: string, opts: PlanOptions = {}): Promise<Plan> {
  const target = path ?? DEFAULT_PATH;
  let text: string;
  try {
    text = await Deno.readTextFile(target);
  } catch (e) {
    if (path === undefined && e instanceof Deno.errors.NotFound) return planFromYaml("", opts);
    throw new UserError(`cannot read pipeline file "${target}": ${(e as Error).message}`, {
      cause: e,
    });
  }
  // Problems name the file as given (relative paths stay short); the plan keeps it absolute.
  const plan = planFromYamlNamed(text, target, opts);
  return plan;
}

function planFromYamlNamed(text: string, file: string, opts: PlanOptions): Plan {
  const r = compileText(text, file, opts);
  if (!r.plan) throw new ConfigError(r.problems);
  return r.plan;
}

/**
 * Lints and compiles the text of the pipeline file `file` (named as given in
 * problems, made absolute in the plan): the plan, or every problem.
 */
export function compileText(
  text: string,
  file: string,
  opts: PlanOptions = {},
): { readonly plan?: Plan; readonly problems: readonly Problem[] } {
  const { config, problems } = analyzeYaml(text, file, opts.env ?? processEnv());
  if (problems.length > 0) return { problems };
  return { plan: compilePlan(config, resolve(file)), problems: [] };
}
