/**
 * Front door of the runtime: the running pipeline (pipeline.ts), built from
 * a checked plan in one place, with one lifecycle (start, reload, stop); the
 * reload controller that applies a new plan part by part (controller.ts,
 * parts.ts); and the plan's generation, kept across restarts
 * (generation.ts). `start` (src/cli/start.ts) only adds arguments and
 * signals.
 */
export { type Pipeline, type PipelineOptions, startPipeline } from "./pipeline.ts";
export { describeDefaults } from "./open.ts";
export {
  type AttemptProblem,
  type ConfigStatus,
  createReloadController,
  describeChange,
  type LastReload,
  type NextGeneration,
  type PlanPart,
  type RejectedAttempt,
  type ReloadController,
  type ReloadOutcome,
  type ReloadResult,
  type ReloadTrigger,
} from "./controller.ts";
export { saveGeneration, startGeneration, type StoredGeneration } from "./generation.ts";
