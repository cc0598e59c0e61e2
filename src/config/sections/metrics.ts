/**
 * The metric field group that `speed.metrics` and `batch.metrics` share: one
 * metric's fields (batch metrics may also group by fields joined from user
 * metadata, and reconcile with a speed metric), the rules every metric list
 * follows, and the compile step from a YAML metric to a `MetricPlan`. A metric
 * list is one key of the reload table, marked by its section.
 */

import {
  AGGREGATIONS,
  EVENT_FIELDS,
  type FilterPlan,
  JOINED_FIELDS,
  type MetricPlan,
  NUMERIC_FIELDS,
} from "../../core/vocabulary.ts";
import type {
  BatchFilterConfig,
  BatchMetricConfig,
  PipelineConfig,
  SpeedFilterConfig,
  SpeedMetricConfig,
} from "../types.gen.ts";
import type { FieldSpec, LintRule, ObjectSpec } from "../spec_types.ts";

const JOINED_REFUSED: Record<string, string> = Object.fromEntries(
  JOINED_FIELDS.map((f) => [
    f,
    `"${f}" is joined from user metadata, which only batch metrics can use`,
  ]),
);

function filterSpec(fields: readonly string[], speed: boolean): ObjectSpec {
  const values = (verb: string): ObjectSpec => ({
    type: "object",
    description: `Per field, the values an event's field ${verb}.`,
    optional: true,
    fields: Object.fromEntries(
      fields.map((f) => [
        f,
        {
          type: "list",
          description: `Values of \`${f}\`.`,
          optional: true,
          minItems: 1,
          items: { type: "scalar", description: `A value of \`${f}\`.` },
        } satisfies FieldSpec,
      ]),
    ),
  });
  return {
    type: "object",
    typeName: speed ? "SpeedFilterConfig" : "BatchFilterConfig",
    description: "Only events matching every condition count (AND).",
    optional: true,
    example: { in: { app: ["WHATSAPP", "TELEGRAM", "SKYPE"] } },
    fields: { in: values("must be one of"), not_in: values("must not be any of") },
  };
}

/** The fields of one metric of the speed (`speed` true) or the batch layer. */
export function metricSpec(speed: boolean): ObjectSpec {
  const fields = speed ? [...EVENT_FIELDS] : [...EVENT_FIELDS, ...JOINED_FIELDS];
  const fieldEnum = (description: string, def?: string): FieldSpec => ({
    type: "enum",
    description,
    values: fields,
    refused: speed ? JOINED_REFUSED : undefined,
    default: def,
  });
  const spec: ObjectSpec = {
    type: "object",
    typeName: speed ? "SpeedMetricConfig" : "BatchMetricConfig",
    description: "One metric: rows of (window, group key, value) written with `type` = name.",
    fields: {
      name: {
        type: "identifier",
        description: "Metric name, written to the `type` column; a SQL-safe identifier.",
        example: "antenna_bytes_total",
      },
      group_by: {
        type: "list",
        description:
          "Group key field(s); one field or a list. The key is their values joined by `|`.",
        minItems: 1,
        unique: true,
        example: "antenna_id",
        items: fieldEnum(
          speed ? "An event field." : "An event field, or a field joined from user metadata.",
        ),
      },
      aggregation: {
        type: "enum",
        description: "How values are combined in a group.",
        values: AGGREGATIONS,
        default: "sum",
      },
      field: fieldEnum(
        "Field aggregated (ignored by `count`); sum/min/max need a numeric field.",
        "bytes",
      ),
      filter: filterSpec(fields, speed),
      description: {
        type: "string",
        description: "Free text for dashboards and docs.",
        optional: true,
      },
    },
  };
  if (speed) return spec;
  return {
    ...spec,
    fields: {
      ...spec.fields,
      reconcile_with: {
        type: "identifier",
        description: "Speed metric with the same hourly total, compared per hour (reconciliation).",
        optional: true,
        example: "user_bytes_total",
      },
    },
  };
}

/** Rules of both metric lists, reported at `speed.metrics[i]` and `batch.metrics[i]`. */
export const METRIC_RULES: readonly LintRule<PipelineConfig>[] = [
  {
    id: "unique_metric_names",
    description: "Metric names are unique within `speed.metrics` and within `batch.metrics`.",
    check(c, report) {
      for (
        const [layer, metrics] of [["speed", c.speed.metrics], ["batch", c.batch.metrics]] as const
      ) {
        const seen = new Map<string, number>();
        metrics.forEach((m, i) => {
          if (m?.name === undefined) return;
          const first = seen.get(m.name);
          if (first === undefined) seen.set(m.name, i);
          else {
            report(
              `${layer}.metrics[${i}].name`,
              `duplicate metric name "${m.name}" (first defined at ${layer}.metrics[${first}])`,
            );
          }
        });
      }
    },
  },
  {
    id: "numeric_aggregation_field",
    description: "`sum`, `min` and `max` aggregate a numeric field (bytes or timestamp).",
    check(c, report) {
      for (
        const [layer, metrics] of [["speed", c.speed.metrics], ["batch", c.batch.metrics]] as const
      ) {
        metrics.forEach((m, i) => {
          if (!m || !["sum", "min", "max"].includes(m.aggregation)) return;
          if (!NUMERIC_FIELDS.includes(m.field)) {
            report(
              `${layer}.metrics[${i}].field`,
              `${m.aggregation} needs a numeric field (expected one of: ${
                NUMERIC_FIELDS.join(", ")
              }), got "${m.field}"`,
            );
          }
        });
      }
    },
  },
  {
    id: "numeric_filter_values",
    description: "Filter values of numeric fields (bytes, timestamp) are numbers.",
    check(c, report) {
      for (
        const [layer, metrics] of [["speed", c.speed.metrics], ["batch", c.batch.metrics]] as const
      ) {
        metrics.forEach((m, i) => {
          for (const op of ["in", "not_in"] as const) {
            const lists: Record<string, readonly (string | number)[] | undefined> =
              m?.filter?.[op] ?? {};
            for (const field of NUMERIC_FIELDS) {
              (lists[field] ?? []).forEach((v, j) => {
                if (typeof v !== "number") {
                  report(
                    `${layer}.metrics[${i}].filter.${op}.${field}[${j}]`,
                    `expected a number (${field} is numeric), got ${JSON.stringify(v)}`,
                    "type",
                  );
                }
              });
            }
          }
        });
      }
    },
  },
];

function compileFilter(
  f: SpeedFilterConfig | BatchFilterConfig | undefined,
): FilterPlan | undefined {
  if (!f) return undefined;
  const out: { in?: FilterPlan["in"]; notIn?: FilterPlan["notIn"] } = {};
  if (f.in && Object.keys(f.in).length > 0) out.in = { ...f.in };
  if (f.not_in && Object.keys(f.not_in).length > 0) out.notIn = { ...f.not_in };
  return out.in || out.notIn ? out : undefined;
}

/** A YAML metric of either layer → its `MetricPlan`. */
export function compileMetric(m: SpeedMetricConfig | BatchMetricConfig): MetricPlan {
  const filter = compileFilter(m.filter);
  return {
    name: m.name,
    groupBy: [...m.group_by],
    aggregation: m.aggregation,
    field: m.field,
    ...(filter ? { filter } : {}),
    ...(m.description !== undefined ? { description: m.description } : {}),
  };
}
