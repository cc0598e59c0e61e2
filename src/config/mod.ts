/**
 * The config front door: load a pipeline.yaml into a frozen `Plan`, lint one,
 * redact one for display. Other layers import from here only.
 */

export { loadPlan, planFromYaml } from "./load.ts";
export type { PlanOptions } from "./load.ts";
export { lintYaml } from "./lint.ts";
export { redactPlan } from "./redact.ts";
export { ConfigError, formatProblem } from "./problem.ts";
export type { Problem, ProblemKind } from "./problem.ts";
export { DEFAULTS_FILE } from "./compile.ts";
export type * from "./plan.ts";
