/**
 * The compiled, frozen plan that every layer runs from. `pipeline.yaml` is
 * parsed, linted and compiled into a `Plan` (see `compile.ts`); the runtime
 * never sees raw YAML. Durations are milliseconds, sizes are bytes, names that
 * reach SQL are already validated identifiers.
 *
 * Nothing here is written twice: each section's plan is the return type of
 * its compile step (`sections/<key>.ts`), and the domain vocabulary (fields,
 * aggregations, metric and schema plans) comes from `core/vocabulary.ts`.
 */

import type { SECTIONS } from "./spec.ts";
import type { Frozen } from "./spec_types.ts";

export type {
  Aggregation,
  EventField,
  FilterPlan,
  JoinedField,
  MetricPlan,
  SchemaPlan,
} from "../core/vocabulary.ts";
export type { KafkaSourcePlan, SimulatorPlan, SourcePlan } from "./sections/source.ts";
export type { SpeedPlan } from "./sections/speed.ts";
export type {
  AlertKafkaPlan,
  AlertWebhookPlan,
  QuotaAlertsPlan,
  RetryPlan,
} from "./sections/quota_alerts.ts";
export type { LakePlan } from "./sections/lake.ts";
export type { BatchPlan, QuotaPlan, UnknownDevicePolicy } from "./sections/batch.ts";
export type { DatabasePlan } from "./sections/database.ts";
export type { ApiPlan } from "./sections/api.ts";

type Sections = typeof SECTIONS;

/** The whole plan: one part per section, each its compile step's result. */
export type Plan = Frozen<
  & {
    /** Absolute path of the file the plan came from ("<defaults>" if none). */
    file: string;
  }
  & { [K in keyof Sections]: ReturnType<Sections[K]["compile"]> }
>;
