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
export { canonicalJson, definitionHash, metricDefinition, planHash } from "./hash.ts";
export {
  type BatchMetricPlan,
  diffPlans,
  type KeyChange,
  type MetricChanges,
  type PlanDiff,
  refusalLine,
} from "./diff.ts";
export { RELOAD_KEYS, type ReloadKey, type ReloadPart } from "./reload_keys.ts";
// For the reload controller (src/runtime/controller.ts): where a refused key
// sits in the file, the `${VAR}` environment, and the reload metrics.
export { readYamlTree } from "./yaml_tree.ts";
export type { Env } from "./interpolate.ts";
export { configTelemetry } from "./telemetry.ts";
export { type FileWatch, watchFile } from "./watch.ts";
export { compileText, DEFAULT_PATH } from "./load.ts";
