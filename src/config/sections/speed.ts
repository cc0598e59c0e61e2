/**
 * `speed`: the speed layer, event-time tumbling windows into the `bytes`
 * table, with its metric list and the quota alerts sub-section. Flushing and
 * the metric list apply live; the window and the lateness only at a restart,
 * because every stored window and watermark depends on them.
 */

import { HOUR_MS } from "../../core/window.ts";
import type { PipelineConfig } from "../types.gen.ts";
import {
  type CompileContext,
  type Frozen,
  type LintRule,
  live,
  type ObjectSpec,
  restart,
  type Section,
} from "../spec_types.ts";
import { compileMetric, metricSpec } from "./metrics.ts";
import { quotaAlerts } from "./quota_alerts.ts";

const SPEC: ObjectSpec = {
  type: "object",
  typeName: "SpeedConfig",
  description: "The speed layer: event-time tumbling windows into the `bytes` table.",
  fields: {
    enabled: {
      type: "bool",
      reload: restart("the speed layer is started, or not, once at start"),
      description: "Run the speed layer in `start`.",
      default: true,
    },
    window: {
      type: "duration",
      reload: restart(
        "every stored window, the lake's completeness and the hourly reconciliation depend on the window length",
      ),
      description: "Window length; must divide one hour evenly.",
      default: "5m",
      min: 1_000,
    },
    allowed_lateness: {
      type: "duration",
      reload: restart(
        "every partition's watermark, and so which events were counted, depends on it",
      ),
      description:
        "Watermark = highest event time seen minus this; must be shorter than the window.",
      default: "15s",
    },
    idle_timeout: {
      type: "duration",
      reload: live("speed"),
      description: "Close open windows after this long without new events.",
      default: "30s",
      min: 100,
    },
    flush_interval: {
      type: "duration",
      reload: live("speed"),
      description:
        "How often updated windows are written to PostgreSQL when the layer keeps up; when a write takes longer, the next one starts as soon as it ends, with everything consumed meanwhile.",
      default: "1s",
      min: 10,
    },
    max_dirty_rows: {
      type: "int",
      reload: live("speed"),
      description:
        "Partial rows (metric, window, key) one Kafka partition may change while a write to PostgreSQL is in flight; past it, that partition's consumption waits for the next write to take them. Bounds memory when catching up; changes of the same row merge in memory meanwhile.",
      default: 25_000,
      min: 1,
    },
    metrics: {
      type: "list",
      reload: live("speed", "backfill", "api"),
      description: "Metrics computed per window.",
      default: [
        {
          name: "antenna_bytes_total",
          group_by: "antenna_id",
          aggregation: "sum",
          field: "bytes",
          description: "Bytes per antenna.",
        },
        {
          name: "user_bytes_total",
          group_by: "id",
          aggregation: "sum",
          field: "bytes",
          description: "Bytes per device.",
        },
        {
          name: "app_bytes_total",
          group_by: "app",
          aggregation: "sum",
          field: "bytes",
          description: "Bytes per app.",
        },
      ],
      items: metricSpec(true),
    },
    backfill_hours: {
      type: "int",
      reload: live("backfill"),
      description:
        "When a reload (or a start) adds a speed metric or changes its definition, its windows are recomputed from the lake for this many past hours (from the start of the hour this many hours back), meeting the live windows exactly at the switch; 0 = none (the metric starts at the switch). Unset = every hour the lake holds.",
      optional: true,
      min: 0,
      max: 24 * 366 * 100,
      example: 168,
    },
    quota_alerts: quotaAlerts.spec,
  },
};

const RULES: readonly LintRule<PipelineConfig>[] = [
  {
    id: "window_divides_hour",
    description: "`speed.window` divides one hour evenly (the batch layer reconciles per hour).",
    check(c, report) {
      if (HOUR_MS % c.speed.window !== 0) {
        report(
          "speed.window",
          "window must divide one hour evenly (e.g. 1m, 5m, 10m, 15m, 30m, 1h)",
        );
      }
    },
  },
  {
    id: "lateness_below_window",
    description: "`speed.allowed_lateness` is shorter than `speed.window`.",
    check(c, report) {
      if (c.speed.allowed_lateness >= c.speed.window) {
        report("speed.allowed_lateness", "allowed_lateness must be shorter than speed.window");
      }
    },
  },
  ...quotaAlerts.rules,
];

function compile(c: PipelineConfig["speed"], context: CompileContext) {
  return {
    enabled: c.enabled,
    windowMs: c.window,
    allowedLatenessMs: c.allowed_lateness,
    /** Close open windows after this long without new events. */
    idleTimeoutMs: c.idle_timeout,
    /** How often dirty windows are flushed to PostgreSQL. */
    flushIntervalMs: c.flush_interval,
    /**
     * Partial rows a partition may change while a flush is in flight; past it,
     * its consumption waits for the next flush to take them.
     */
    maxDirtyRows: c.max_dirty_rows,
    metrics: c.metrics.map(compileMetric),
    quotaAlerts: quotaAlerts.compile(c.quota_alerts, context),
    /**
     * Past hours a new or changed metric's windows are recomputed from the lake
     * for; undefined = every hour the lake holds, 0 = none.
     */
    ...(c.backfill_hours !== undefined ? { backfillHours: c.backfill_hours } : {}),
  };
}

export type SpeedPlan = Frozen<ReturnType<typeof compile>>;

export const speed: Section<PipelineConfig["speed"], ReturnType<typeof compile>> = {
  spec: SPEC,
  rules: RULES,
  compile,
};
