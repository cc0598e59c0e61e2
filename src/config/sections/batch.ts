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
    process_max_rows: {
      type: "int",
      reload: live("batch"),
      description:
        "The most lake rows an hour may hold for the in-process engine (`engine: process`) to read it: a larger hour fails its run with a message saying so (the scheduler retries it), instead of taking this process's memory, and with it the speed layer and the API. The in-process engine needs about 40 bytes a row. Unset = half of this machine's memory at that rate (about 320 million rows on 24 GiB). Hours larger than one machine belong on Spark (`engine: spark`, docs/scaling.md).",
      optional: true,
      min: 1,
      max: Number.MAX_SAFE_INTEGER,
      example: 100_000_000,
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
    engine: {
      type: "enum",
      // Each run builds its engine from the plan of the moment it starts.
      reload: live("batch"),
      description:
        "Where an hour is computed: `process` (in this process, the default) or `spark` (the same plan as Spark SQL on `batch.spark`: a standalone cluster, YARN, Kubernetes or Dataproc). Either way the results are written to PostgreSQL by this process, in one transaction.",
      values: ["process", "spark"],
      default: "process",
    },
    spark: {
      type: "object",
      typeName: "BatchSparkConfig",
      description:
        "The Spark engine (`batch.engine: spark`): each hour's script runs with `spark-sql` on `master`, or as a Dataproc Serverless batch when `dataproc.project` is set (docs/scaling.md).",
      fields: {
        master: {
          type: "string",
          reload: live("batch"),
          description:
            "`--master` of `spark-sql`: `local[N]`, `spark://host:port` (a standalone cluster), or anything `spark-submit` accepts (`yarn`, `k8s://…`).",
          default: "local[2]",
          example: "spark://127.0.0.1:7077",
          pattern:
            /^(local(\[(\d+|\*)(,\d+)?\])?|spark:\/\/[^\s/]+(,[^\s/]+)*|yarn|k8s:\/\/\S+|mesos:\/\/\S+)$/,
          patternText: "local, local[N], spark://host:port, yarn or k8s://…",
        },
        home: {
          type: "string",
          reload: live("batch"),
          description:
            "A SPARK_HOME holding `bin/spark-sql`; unset = the `SPARK_HOME` environment variable, else the Spark that `deno task stack up spark` installed.",
          optional: true,
          example: "/opt/spark",
        },
        conf: {
          type: "list",
          reload: live("batch"),
          description:
            "Extra Spark settings, `key=value` each (`--conf`), over the engine's own (UTC, no UI, 8 shuffle partitions, an in-memory catalog, loopback for a local master, the GCS connector for a gs:// lake).",
          default: [],
          example: ["spark.executor.memory=2g", "spark.sql.shuffle.partitions=32"],
          items: {
            type: "string",
            description: "One `key=value` setting.",
            pattern: /^spark\.[A-Za-z0-9_.-]+=.*$/,
            patternText: "spark.<key>=<value>",
          },
        },
        timeout: {
          type: "duration",
          reload: live("batch"),
          description:
            "An hour's Spark run that has not finished after this is killed and fails (the scheduler retries it).",
          default: "30m",
          min: 10_000,
        },
        max_executor_failures: {
          type: "int",
          reload: live("batch"),
          description:
            "A run on a standalone cluster fails, with the executors' last exit reason, once this many of its executors have died (exited, or lost with their worker), instead of running on until `timeout` while the master relaunches them. Spark retries the tasks of a lost executor, so fewer losses only slow a run. YARN and Kubernetes apply Spark's own `spark.executor.maxNumFailures`.",
          default: 10,
          min: 1,
          max: 100_000,
        },
        dataproc: {
          type: "object",
          description:
            "Run each hour as a Dataproc Serverless Spark SQL batch instead of `spark-sql` (set `project` to turn it on); the lake must be on gs://.",
          fields: {
            project: {
              type: "string",
              reload: live("batch"),
              description: "Google Cloud project of the batches; unset = Dataproc off.",
              optional: true,
              example: "my-project",
            },
            region: {
              type: "string",
              reload: live("batch"),
              description: "Dataproc region of the batches.",
              optional: true,
              example: "europe-west1",
              pattern: /^[a-z]+-[a-z]+\d+$/,
              patternText: "a Google Cloud region, e.g. europe-west1",
            },
            service_account: {
              type: "string",
              reload: live("batch"),
              description: "Service account the batches run as; unset = the project's default.",
              optional: true,
            },
            subnetwork: {
              type: "string",
              reload: live("batch"),
              description: "Subnetwork URI of the batches; unset = the default network.",
              optional: true,
            },
            staging: {
              type: "string",
              reload: live("batch"),
              description:
                "gs:// prefix for what a batch needs (the script, the user snapshot) and writes; unset = beside the lake.",
              optional: true,
              example: "gs://my-bucket/dataproc",
              pattern: /^gs:\/\/[a-z0-9][a-z0-9._-]{1,220}(\/\S*)?$/,
              patternText: "a gs://bucket[/prefix] URI",
            },
            endpoint: {
              type: "string",
              reload: live("batch"),
              description: "Dataproc API base URL (a stand-in for tests).",
              default: "https://dataproc.googleapis.com",
              pattern: /^https?:\/\/\S+$/,
              patternText: "an http(s):// URL",
            },
          },
        },
      },
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
    id: "spark_dataproc",
    description:
      "`batch.spark.dataproc` with a `project` needs a `region` and a lake on gs:// (Dataproc cannot read this machine's disk).",
    check(c, report) {
      const d = c.batch.spark.dataproc;
      if (d.project === undefined) {
        for (const key of ["region", "service_account", "subnetwork", "staging"] as const) {
          if (d[key] !== undefined) {
            report(
              `batch.spark.dataproc.${key}`,
              `${key} is set but dataproc.project is not: set project to run hours on Dataproc, or remove ${key}`,
            );
          }
        }
        return;
      }
      if (d.region === undefined) {
        report(
          "batch.spark.dataproc.region",
          "region is required with dataproc.project",
          "missing",
        );
      }
      if (!c.lake.uri.startsWith("gs://")) {
        report(
          "batch.spark.dataproc.project",
          `Dataproc reads the lake from Cloud Storage, but lake.uri is "${c.lake.uri}": put the lake on gs://`,
        );
      }
    },
  },
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
    /** Undefined = from this machine's memory (batch/capacity.ts). */
    ...(c.process_max_rows !== undefined ? { processMaxRows: c.process_max_rows } : {}),
    /** Where hours are computed: in this process, or as Spark SQL on `spark`. */
    engine: c.engine,
    spark: compileSpark(c.spark),
  };
}

/** batch.spark: `conf` lines become a map (a later line wins), Dataproc is on with a project. */
function compileSpark(s: PipelineConfig["batch"]["spark"]) {
  const conf: Record<string, string> = {};
  for (const line of s.conf) {
    const at = line.indexOf("=");
    conf[line.slice(0, at)] = line.slice(at + 1);
  }
  const d = s.dataproc;
  const dataproc = d.project !== undefined && d.region !== undefined
    ? {
      project: d.project,
      region: d.region,
      ...(d.service_account !== undefined ? { serviceAccount: d.service_account } : {}),
      ...(d.subnetwork !== undefined ? { subnetwork: d.subnetwork } : {}),
      /** gs:// prefix for a batch's files; undefined = beside the lake. */
      ...(d.staging !== undefined ? { staging: d.staging } : {}),
      /** Dataproc API base URL. */
      endpoint: d.endpoint,
    }
    : undefined;
  return {
    /** `--master` of spark-sql. */
    master: s.master,
    /** SPARK_HOME; undefined = the environment's, else the stack's install. */
    home: s.home as string | undefined,
    /** Extra `--conf` settings. */
    conf: conf as Readonly<Record<string, string>>,
    /** A run is killed and fails after this long, ms. */
    timeoutMs: s.timeout,
    /** A run is killed and fails once this many of its executors died. */
    maxExecutorFailures: s.max_executor_failures,
    /** Undefined = spark-sql on `master`. */
    dataproc: dataproc as
      | {
        project: string;
        region: string;
        serviceAccount?: string;
        subnetwork?: string;
        staging?: string;
        endpoint: string;
      }
      | undefined,
  };
}

export type BatchPlan = Frozen<ReturnType<typeof compile>>;
export type UnknownDevicePolicy = BatchPlan["unknownDevice"]["policy"];
export type QuotaPlan = BatchPlan["quota"];
export type SparkPlan = BatchPlan["spark"];
export type DataprocPlan = NonNullable<SparkPlan["dataproc"]>;

export const batch: Section<PipelineConfig["batch"], ReturnType<typeof compile>> = {
  spec: SPEC,
  rules: RULES,
  compile,
};
