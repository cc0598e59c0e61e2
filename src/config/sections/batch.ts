/**
 * `batch`: the hourly batch layer, exact totals from the lake into
 * `bytes_hourly` and `user_quota_limit`. Every key applies live: the batch job
 * and the scheduler take the new plan for their next run or tick, and a new
 * or changed metric is re-run for past hours by the backfill.
 */

import { isAdditive } from "../../core/aggregate.ts";
import type { MetricPlan } from "../../core/vocabulary.ts";
import type { PipelineConfig } from "../types.gen.ts";
import { type Frozen, type LintRule, live, type ObjectSpec, type Section } from "../spec_types.ts";
import { compileMetric, metricSpec } from "./metrics.ts";

const SPEC: ObjectSpec = {
  type: "object",
  typeName: "BatchConfig",
  description:
    "The hourly batch layer: exact totals from the lake into `bytes_hourly` and `user_quota_limit`.",
  fields: {
    enabled: {
      type: "bool",
      reload: live("scheduler"),
      description: "Run the scheduler in `start`.",
      default: true,
    },
    grace: {
      type: "duration",
      reload: live("batch", "scheduler"),
      description:
        "Hour H runs once H has ended plus this (late events, compaction) and, with the speed layer on, once the lake holds all of H (every partition complete past its end plus speed.allowed_lateness).",
      default: "10m",
    },
    rerun_after: {
      type: "duration",
      reload: live("batch", "scheduler"),
      description:
        "A batched hour that gets lake rows after its run read the lake (events later than the grace) is stale; it runs again this long after the first such change, so a trickle of late events causes one re-run, not one per event.",
      default: "5m",
    },
    run_lease: {
      type: "duration",
      reload: live("batch", "scheduler"),
      description:
        "How long a running batch run holds its hour without renewing (it renews every third of it); a run of a process that died is taken over once its lease has passed.",
      default: "5m",
      min: 1_000,
    },
    tick: {
      type: "duration",
      reload: live("batch", "scheduler"),
      description: "How often the scheduler wakes.",
      default: "30s",
      min: 100,
    },
    catch_up_hours: {
      type: "int",
      reload: live("batch", "scheduler"),
      description: "How many past hours the scheduler catches up after downtime.",
      default: 24,
      min: 0,
      max: 24 * 366,
    },
    unknown_device: {
      type: "object",
      description: "Devices without user metadata.",
      fields: {
        policy: {
          type: "enum",
          reload: live("batch", "scheduler"),
          description:
            "`unknown_id`: count under `id`; `drop`: leave out (counted in the run); `fail`: fail the hour.",
          values: ["unknown_id", "drop", "fail"],
          default: "unknown_id",
        },
        id: {
          type: "string",
          reload: live("batch", "scheduler"),
          description: "Value of joined fields under `unknown_id`.",
          default: "unknown",
        },
      },
    },
    metrics: {
      type: "list",
      reload: live("batch", "backfill", "api"),
      description: "Metrics computed per hour.",
      default: [
        {
          name: "antenna_bytes_total",
          group_by: "antenna_id",
          aggregation: "sum",
          field: "bytes",
          reconcile_with: "antenna_bytes_total",
          description: "Bytes per antenna.",
        },
        {
          name: "email_bytes_total",
          group_by: "email",
          aggregation: "sum",
          field: "bytes",
          reconcile_with: "user_bytes_total",
          description: "Bytes per user email.",
        },
        {
          name: "app_bytes_total",
          group_by: "app",
          aggregation: "sum",
          field: "bytes",
          reconcile_with: "app_bytes_total",
          description: "Bytes per app.",
        },
      ],
      items: metricSpec(false),
    },
    backfill_hours: {
      type: "int",
      reload: live("backfill"),
      description:
        "When a reload (or a start) adds a batch metric or changes one, the hours the batch layer already ran are run again for this many past hours (from the start of the hour this many hours back); 0 = none. Unset = every batched hour.",
      optional: true,
      min: 0,
      max: 24 * 366 * 100,
      example: 168,
    },
    quota: {
      type: "object",
      description: "Users whose hourly usage exceeds their quota → `user_quota_limit`.",
      fields: {
        enabled: {
          type: "bool",
          reload: live("batch", "scheduler"),
          description: "Compute quota breaches.",
          default: true,
        },
      },
    },
  },
};

const RULES: readonly LintRule<PipelineConfig>[] = [
  {
    id: "reconcile_with_speed_metric",
    description:
      "`reconcile_with` names a speed metric with the same aggregation (sum or count) and field, so hourly totals are comparable.",
    check(c, report) {
      // The first of duplicate names wins, as unique_metric_names reports the others.
      const speed = new Map<string, (typeof c.speed.metrics)[number]>();
      for (const m of c.speed.metrics) if (m?.name && !speed.has(m.name)) speed.set(m.name, m);
      c.batch.metrics.forEach((m, i) => {
        if (m?.reconcile_with === undefined) return;
        const path = `batch.metrics[${i}].reconcile_with`;
        const s = speed.get(m.reconcile_with);
        if (!s) {
          const names = [...speed.keys()];
          report(
            path,
            `unknown speed metric "${m.reconcile_with}" (expected one of: ${
              names.join(", ") || "none defined"
            })`,
            "reference",
          );
        } else if (!isAdditive(m.aggregation)) {
          report(
            path,
            `only sum and count metrics can be reconciled (this one is ${m.aggregation})`,
          );
        } else if (
          s.aggregation !== m.aggregation || (m.aggregation === "sum" && s.field !== m.field)
        ) {
          report(
            path,
            `speed metric "${s.name}" is ${s.aggregation}(${s.field}), this one is ${m.aggregation}(${m.field}): totals are not comparable`,
          );
        }
      });
    },
  },
  {
    id: "grace_covers_lateness_and_compaction",
    description:
      "`batch.grace` is at least `speed.allowed_lateness` and, with compaction on, `lake.compaction.after` plus one roll `max_age`, so an hour is read complete and compacted.",
    check(c, report) {
      if (c.batch.grace < c.speed.allowed_lateness) {
        report(
          "batch.grace",
          "grace must be at least speed.allowed_lateness, or late events are missed",
        );
      } else if (
        c.lake.compaction.enabled && c.batch.grace < c.lake.compaction.after + c.lake.roll.max_age
      ) {
        report(
          "batch.grace",
          "grace must be at least lake.compaction.after + lake.roll.max_age, or the batch reads an hour being compacted",
        );
      }
    },
  },
];

type BatchMetricConfig = PipelineConfig["batch"]["metrics"][number];

function compileBatchMetric(m: BatchMetricConfig): MetricPlan & {
  /** Speed metric this one reconciles with (same totals per hour). */
  readonly reconcileWith?: string;
} {
  return {
    ...compileMetric(m),
    ...(m.reconcile_with !== undefined ? { reconcileWith: m.reconcile_with } : {}),
  };
}

function compile(c: PipelineConfig["batch"]) {
  return {
    enabled: c.enabled,
    /** Run hour H once H has ended plus this grace. */
    graceMs: c.grace,
    /** How often the scheduler wakes. */
    tickMs: c.tick,
    /** How far back the scheduler catches up after downtime. */
    catchUpHours: c.catch_up_hours,
    /** A stale hour runs again this long after the first lake change its batch did not see. */
    rerunAfterMs: c.rerun_after,
    /** How long a running run holds its hour without renewing its lease. */
    runLeaseMs: c.run_lease,
    unknownDevice: {
      policy: c.unknown_device.policy,
      /** Value used for joined fields when policy is `unknown_id`. */
      id: c.unknown_device.id,
    },
    metrics: c.metrics.map(compileBatchMetric),
    quota: {
      enabled: c.quota.enabled,
      /** Metric name of the per-user usage (grouped by email). */
      usageField: "bytes" as const,
    },
    /** Past hours re-run for a new or changed batch metric; undefined = every batched hour, 0 = none. */
    ...(c.backfill_hours !== undefined ? { backfillHours: c.backfill_hours } : {}),
  };
}

export type BatchPlan = Frozen<ReturnType<typeof compile>>;
export type UnknownDevicePolicy = BatchPlan["unknownDevice"]["policy"];
export type QuotaPlan = BatchPlan["quota"];

export const batch: Section<PipelineConfig["batch"], ReturnType<typeof compile>> = {
  spec: SPEC,
  rules: RULES,
  compile,
};
