/**
 * The pipeline.yaml spec, declared once: every section and field with its
 * type, default, description and example, plus the cross-field rules. The
 * linter validates against it, and `deno task gen` derives `types.gen.ts`,
 * `docs/config-reference.md` and `docs/pipeline.schema.json` from it. Adding a
 * setting means adding it here (and mapping it onto the Plan in compile.ts).
 */

import { isAdditive } from "../core/aggregate.ts";
import { HOUR_MS } from "../core/window.ts";
import { DEFAULT_APPS } from "../core/apps.ts";
import type { PipelineConfig } from "./types.gen.ts";
import type { FieldSpec, LintRule, ObjectSpec } from "./spec_types.ts";

/** Fields of a telemetry event (usable by every metric). */
export const EVENT_FIELDS = ["bytes", "timestamp", "app", "id", "antenna_id"] as const;
/** Fields joined from user metadata (batch metrics only). */
export const JOINED_FIELDS = ["email", "name"] as const;
/** Fields whose values are numbers: what sum/min/max can aggregate. */
export const NUMERIC_FIELDS: readonly string[] = ["bytes", "timestamp"];
export const AGGREGATIONS = ["sum", "count", "min", "max", "count_distinct"] as const;

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

function metricSpec(speed: boolean): ObjectSpec {
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

const TOPIC: Omit<FieldSpec & { type: "string" }, "description"> = {
  type: "string",
  pattern: /^[A-Za-z0-9._-]{1,249}$/,
  patternText: "a Kafka topic name (letters, digits, '.', '_', '-')",
};
/** Retry settings of one alert output (a shared field group, like Redpanda Connect's). */
function retrySpec(what: string): ObjectSpec {
  return {
    type: "object",
    description:
      `How a failed ${what} delivery is retried: exponential backoff from \`backoff\`, ` +
      "doubling, capped at `max_backoff`; after `max_attempts` the delivery is recorded as " +
      "failed (shown by the API).",
    fields: {
      max_attempts: {
        type: "int",
        description: "Attempts before the delivery is recorded as failed.",
        default: 10,
        min: 1,
        max: 1_000,
      },
      backoff: {
        type: "duration",
        description: "Wait before the second attempt.",
        default: "1s",
        min: 10,
      },
      max_backoff: {
        type: "duration",
        description: "Longest wait between two attempts.",
        default: "5m",
        min: 10,
      },
    },
  };
}

/** speed.quota_alerts: real-time quota alerts (src/alerts). */
const QUOTA_ALERTS_SPEC: ObjectSpec = {
  type: "object",
  typeName: "QuotaAlertsConfig",
  description: "Real-time quota alerts: the speed layer sums each user's usage in each hour " +
    "over all partitions and raises one alert per (email, hour, threshold) when it reaches a " +
    "threshold; the batch layer confirms or corrects them (README, Quota alerts).",
  fields: {
    enabled: {
      type: "bool",
      description: "Detect quota alerts in the speed layer of `start`.",
      default: true,
    },
    thresholds: {
      type: "list",
      description: "Shares of the hourly quota that raise an alert when usage reaches them " +
        "(usage >= share x quota); 1.0 is the quota itself.",
      minItems: 1,
      unique: true,
      default: [0.8, 1.0],
      example: [0.5, 0.8, 1.0],
      items: {
        type: "number",
        description: "A share of the quota, up to 4 decimals.",
        min: 0.0001,
        max: 100,
      },
    },
    hour: {
      type: "enum",
      description: "Which hour an event's bytes count in: the UTC hour of its event time, the " +
        "batch layer's hours, so both layers judge the same usage (processing-time hours " +
        "would disagree with the batch layer on every late event).",
      values: ["event_time"],
      default: "event_time",
    },
    refresh_interval: {
      type: "duration",
      description: "How often quotas and emails are reloaded from `user_metadata`: a change " +
        "reaches the running process within this, without a restart.",
      default: "30s",
      min: 100,
    },
    outputs: {
      type: "object",
      description: "Where alerts go, besides the `quota_alerts` table; each optional. " +
        "Deliveries are retried apart from consumption and survive restarts (an outbox).",
      fields: {
        kafka: {
          type: "object",
          description: "A Kafka topic of JSON alerts keyed by email, header `delivery-id`.",
          fields: {
            enabled: {
              type: "bool",
              description: "Publish alerts when there is a Kafka: the source is `kafka` or " +
                "`brokers` is set (with the simulator and no brokers, this output is off).",
              default: true,
            },
            topic: { ...TOPIC, description: "Topic of the alerts.", default: "quota.alerts" },
            brokers: {
              type: "list",
              description: "Brokers of the alert topic; default: `source.kafka.brokers`.",
              optional: true,
              minItems: 1,
              example: "10.0.0.5:9092",
              items: {
                type: "string",
                description: "A broker address.",
                pattern: /^[^\s:,]+:\d{1,5}$/,
                patternText: "host:port",
              },
            },
            retry: retrySpec("Kafka"),
          },
        },
        webhook: {
          type: "object",
          description: "An HTTP POST of each alert as JSON, signed with HMAC-SHA256.",
          fields: {
            url: {
              type: "string",
              description: "Receiver URL; unset = no webhook.",
              optional: true,
              example: "https://ops.example.com/hooks/quota",
              pattern: /^https?:\/\/\S+$/,
              patternText: "an http(s):// URL",
            },
            secret: {
              type: "string",
              description: "Key of the `X-Antenna-Signature: sha256=<hex>` header, an " +
                "HMAC-SHA256 of the body; required with `url`.",
              optional: true,
              example: "${QUOTA_WEBHOOK_SECRET}",
            },
            timeout: {
              type: "duration",
              description: "An attempt that has no answer after this fails (and is retried).",
              default: "5s",
              min: 10,
            },
            concurrency: {
              type: "int",
              description: "Deliveries in flight at once.",
              default: 4,
              min: 1,
              max: 256,
            },
            retry: retrySpec("webhook"),
          },
        },
        stream: {
          type: "object",
          description: "The API's Server-Sent Events stream `GET /api/v1/quota/alerts/stream`.",
          fields: {
            enabled: { type: "bool", description: "Serve the stream.", default: true },
          },
        },
      },
    },
  },
};

const HOST: FieldSpec = {
  type: "string",
  description: "Interface to listen on.",
  default: "127.0.0.1",
};

/** The whole pipeline.yaml. */
export const PIPELINE_SPEC: ObjectSpec = {
  type: "object",
  typeName: "PipelineConfig",
  description: "The pipeline: source → speed layer → lake → batch layer → database → API.",
  fields: {
    source: {
      type: "object",
      typeName: "SourceConfig",
      description: "Where events come from.",
      fields: {
        kind: {
          type: "enum",
          description:
            "`kafka`: consume the topic. `simulator`: in-process generator, no Kafka needed.",
          values: ["kafka", "simulator"],
          default: "simulator",
        },
        kafka: {
          type: "object",
          description: "Kafka consumer settings (used when kind is `kafka`, and by `simulate`).",
          fields: {
            brokers: {
              type: "list",
              description: "Bootstrap brokers, host:port; a comma-separated string is accepted.",
              minItems: 1,
              default: ["127.0.0.1:9092"],
              example: "10.0.0.5:9092,10.0.0.6:9092",
              items: {
                type: "string",
                description: "A broker address.",
                pattern: /^[^\s:,]+:\d{1,5}$/,
                patternText: "host:port",
              },
            },
            topic: { ...TOPIC, description: "Topic of device events.", default: "devices" },
            group: { type: "string", description: "Consumer group id.", default: "antenna-lambda" },
            client_id: {
              type: "string",
              description: "Kafka client id.",
              default: "antenna-lambda",
            },
            dead_letter_topic: {
              ...TOPIC,
              description: "Topic receiving rejected messages with their reason.",
              default: "devices.dlq",
            },
            create_topics: {
              type: "bool",
              description: "Create the topics when missing.",
              default: true,
            },
            partitions: {
              type: "int",
              description: "Partitions of topics this process creates.",
              default: 3,
              min: 1,
              max: 10_000,
            },
            from_beginning: {
              type: "bool",
              description: "A new consumer group starts at the oldest offset (else the newest).",
              default: true,
            },
          },
        },
        simulator: {
          type: "object",
          description: "The built-in event generator (kind `simulator`).",
          fields: {
            antennas: {
              type: "int",
              description: "Number of antennas.",
              default: 5,
              min: 1,
              max: 1_000_000,
            },
            devices: {
              type: "int",
              description: "Number of devices.",
              default: 20,
              min: 1,
              max: 10_000_000,
            },
            apps: {
              type: "list",
              description: "App names events are drawn from.",
              minItems: 1,
              unique: true,
              default: [...DEFAULT_APPS],
              items: { type: "string", description: "An app name." },
            },
            rate: {
              type: "number",
              description:
                "Events per second over all partitions (each device sends its equal share). " +
                "0 = as fast as possible: event times are spaced at a nominal 100 000 events/s, " +
                "never ahead of the wall clock, the first run starting `max_backlog` in the past, " +
                "so delivery is as fast as the speed layer consumes and the backlog grows.",
              default: 100,
              min: 0,
            },
            seed: {
              type: "int",
              description: "Seed of the deterministic generator.",
              default: 42,
              min: 0,
            },
            late_share: {
              type: "number",
              description: "Share (0..1) of events emitted late / out of order.",
              default: 0.05,
              min: 0,
              max: 1,
            },
            malformed_share: {
              type: "number",
              description: "Share (0..1) of malformed messages (to exercise the dead-letter path).",
              default: 0.01,
              min: 0,
              max: 1,
            },
            max_lateness: {
              type: "duration",
              description: "Largest delay of a late event.",
              default: "30s",
            },
            max_backlog: {
              type: "duration",
              description: "Longest downtime made up for. The simulator replays like a topic: " +
                "after a restart, the events it would have issued while the pipeline was down " +
                "are a backlog the speed layer catches up on. When the source starts with more " +
                "than this behind, the older part of the gap is skipped (and logged).",
              default: "1h",
            },
            history: {
              type: "duration",
              description: "On a database the simulator has never run against, it starts this " +
                "far in the past: the pipeline begins with a backlog of simulated history that " +
                "it catches up on (past hours batched at once, a dashboard with data from the " +
                "first minute). At most `max_backlog`; ignored with `rate: 0`.",
              default: "0s",
            },
          },
        },
      },
    },
    schema: {
      type: "object",
      typeName: "SchemaConfig",
      description: "What makes an event valid; the rest goes to the dead-letter topic.",
      fields: {
        max_payload_bytes: {
          type: "size",
          description: "Larger messages are dead-lettered as `oversized`.",
          default: "64KiB",
          min: 64,
        },
        min_timestamp: {
          type: "timestamp",
          description: "Earliest accepted event time.",
          default: "2000-01-01T00:00:00Z",
        },
        max_future: {
          type: "duration",
          description: "How far past the wall clock an event time may be.",
          default: "1h",
        },
        max_app_length: {
          type: "int",
          description: "Longest accepted `app` value.",
          default: 64,
          min: 1,
          max: 4096,
        },
      },
    },
    speed: {
      type: "object",
      typeName: "SpeedConfig",
      description: "The speed layer: event-time tumbling windows into the `bytes` table.",
      fields: {
        enabled: { type: "bool", description: "Run the speed layer in `start`.", default: true },
        window: {
          type: "duration",
          description: "Window length; must divide one hour evenly.",
          default: "5m",
          min: 1_000,
        },
        allowed_lateness: {
          type: "duration",
          description:
            "Watermark = highest event time seen minus this; must be shorter than the window.",
          default: "15s",
        },
        idle_timeout: {
          type: "duration",
          description: "Close open windows after this long without new events.",
          default: "30s",
          min: 100,
        },
        flush_interval: {
          type: "duration",
          description:
            "How often updated windows are written to PostgreSQL when the layer keeps up; when a write takes longer, the next one starts as soon as it ends, with everything consumed meanwhile.",
          default: "1s",
          min: 10,
        },
        max_dirty_rows: {
          type: "int",
          description:
            "Partial rows (metric, window, key) one Kafka partition may change while a write to PostgreSQL is in flight; past it, that partition's consumption waits for the next write to take them. Bounds memory when catching up; changes of the same row merge in memory meanwhile.",
          default: 25_000,
          min: 1,
        },
        metrics: {
          type: "list",
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
          description:
            "When a reload (or a start) adds a speed metric or changes its definition, its windows are recomputed from the lake for this many past hours (from the start of the hour this many hours back), meeting the live windows exactly at the switch; 0 = none (the metric starts at the switch). Unset = every hour the lake holds.",
          optional: true,
          min: 0,
          max: 24 * 366 * 100,
          example: 168,
        },
        quota_alerts: QUOTA_ALERTS_SPEC,
      },
    },
    lake: {
      type: "object",
      typeName: "LakeConfig",
      description: "The raw Parquet lake, Hive-partitioned by event hour (UTC).",
      fields: {
        uri: {
          type: "string",
          description:
            "`file://path` (relative paths resolve against this file's folder) or `gs://bucket/prefix`.",
          default: "file://./data/lake",
          example: "gs://my-bucket/antenna-lake",
          pattern: /^(file:\/\/.+|gs:\/\/[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](\/.*)?)$/,
          patternText: "file://<path> or gs://<bucket>[/<prefix>]",
        },
        gcs_endpoint: {
          type: "string",
          description: "GCS API endpoint override (an emulator); unset = Google.",
          optional: true,
          example: "http://127.0.0.1:4443",
          pattern: /^https?:\/\/\S+$/,
          patternText: "an http(s):// URL",
        },
        gcs_project_id: { type: "string", description: "GCS project id.", optional: true },
        roll: {
          type: "object",
          description: "When an open Parquet file is closed; whichever comes first.",
          fields: {
            max_rows: {
              type: "int",
              description:
                "Rows per file. The open file of each Kafka partition is held in memory until it is cut (about 150 bytes a row), so this bounds the writer's memory when catching up; complete hours are compacted anyway.",
              default: 50_000,
              min: 1,
            },
            max_bytes: {
              type: "size",
              description: "Approximate bytes per file.",
              default: "64MiB",
              min: 1024,
            },
            max_age: {
              type: "duration",
              description: "Age of the oldest row in an open file.",
              default: "1m",
              min: 100,
            },
          },
        },
        compaction: {
          type: "object",
          description: "Merging of a complete hour's small files into one per Kafka partition.",
          fields: {
            enabled: { type: "bool", description: "Compact complete hours.", default: true },
            after: {
              type: "duration",
              description: "An hour is compacted once the watermark is this far past its end.",
              default: "5m",
            },
            copy_min_rows: {
              type: "int",
              description:
                "Files averaging at least this many rows are joined by copying their row groups (fast, no re-encoding, but each keeps its own dictionaries: a bigger file); smaller ones are merged into 1,000,000-row groups.",
              default: 20_000,
              min: 0,
            },
          },
        },
      },
    },
    batch: {
      type: "object",
      typeName: "BatchConfig",
      description:
        "The hourly batch layer: exact totals from the lake into `bytes_hourly` and `user_quota_limit`.",
      fields: {
        enabled: { type: "bool", description: "Run the scheduler in `start`.", default: true },
        grace: {
          type: "duration",
          description:
            "Hour H runs once H has ended plus this (late events, compaction) and, with the speed layer on, once the lake holds all of H (every partition complete past its end plus speed.allowed_lateness).",
          default: "10m",
        },
        rerun_after: {
          type: "duration",
          description:
            "A batched hour that gets lake rows after its run read the lake (events later than the grace) is stale; it runs again this long after the first such change, so a trickle of late events causes one re-run, not one per event.",
          default: "5m",
        },
        run_lease: {
          type: "duration",
          description:
            "How long a running batch run holds its hour without renewing (it renews every third of it); a run of a process that died is taken over once its lease has passed.",
          default: "5m",
          min: 1_000,
        },
        tick: {
          type: "duration",
          description: "How often the scheduler wakes.",
          default: "30s",
          min: 100,
        },
        catch_up_hours: {
          type: "int",
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
              description:
                "`unknown_id`: count under `id`; `drop`: leave out (counted in the run); `fail`: fail the hour.",
              values: ["unknown_id", "drop", "fail"],
              default: "unknown_id",
            },
            id: {
              type: "string",
              description: "Value of joined fields under `unknown_id`.",
              default: "unknown",
            },
          },
        },
        metrics: {
          type: "list",
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
            enabled: { type: "bool", description: "Compute quota breaches.", default: true },
          },
        },
      },
    },
    database: {
      type: "object",
      typeName: "DatabaseConfig",
      description: "The serving PostgreSQL.",
      fields: {
        url: {
          type: "string",
          description: "postgres:// URL (e.g. Cloud SQL); unset or empty = embedded PGlite.",
          optional: true,
          example: "postgres://app:secret@10.0.0.7:5432/antenna",
          pattern: /^postgres(ql)?:\/\/\S+$/,
          patternText: "a postgres:// URL",
        },
        embedded: {
          type: "object",
          description: "The embedded PGlite used when `url` is unset.",
          fields: {
            dir: {
              type: "string",
              description: "Folder PGlite persists to (relative to this file's folder).",
              default: "./data/pglite",
            },
            host: HOST,
            port: {
              type: "int",
              description: "Port serving PGlite over the wire protocol (0 = off).",
              default: 55432,
              min: 0,
              max: 65535,
            },
          },
        },
        allow_simulator_writes: {
          type: "bool",
          description: "Allow simulated events into a configured (real) database.",
          default: false,
        },
        max_connections: {
          type: "int",
          description: "Connection pool size.",
          default: 10,
          min: 1,
          max: 1000,
        },
      },
    },
    api: {
      type: "object",
      typeName: "ApiConfig",
      description: "The HTTP API (Hono).",
      fields: {
        enabled: { type: "bool", description: "Serve the API in `start`.", default: true },
        host: HOST,
        port: { type: "int", description: "Port.", default: 8080, min: 1, max: 65535 },
        token: {
          type: "string",
          description: "Bearer token for mutating routes; unset = only loopback may mutate.",
          optional: true,
          example: "${API_TOKEN}",
        },
      },
    },
  },
};

/** Cross-field rules, run after every field is checked on its own. */
export const RULES: readonly LintRule<PipelineConfig>[] = [
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
  {
    id: "distinct_topics",
    description: "The dead-letter topic differs from the event topic.",
    check(c, report) {
      if (c.source.kafka.dead_letter_topic === c.source.kafka.topic) {
        report("source.kafka.dead_letter_topic", "dead_letter_topic must differ from topic");
      }
    },
  },
  {
    id: "simulator_shares",
    description: "`late_share + malformed_share` is at most 1.",
    check(c, report) {
      const s = c.source.simulator;
      if (s.late_share + s.malformed_share > 1) {
        report(
          "source.simulator.malformed_share",
          "late_share + malformed_share must be at most 1",
        );
      }
    },
  },
  {
    id: "simulator_history",
    description: "`source.simulator.history` is at most `source.simulator.max_backlog`.",
    check(c, report) {
      const s = c.source.simulator;
      if (s.history > s.max_backlog) {
        report(
          "source.simulator.history",
          "history must be at most source.simulator.max_backlog, which caps any backlog",
        );
      }
    },
  },
  {
    id: "quota_alert_thresholds",
    description:
      "`speed.quota_alerts.thresholds` have at most 4 decimals (alerts are keyed by them).",
    check(c, report) {
      c.speed.quota_alerts.thresholds.forEach((t, i) => {
        if (Math.abs(Math.round(t * 10_000) - t * 10_000) > 1e-6) {
          report(
            `speed.quota_alerts.thresholds[${i}]`,
            `a threshold has at most 4 decimals, got ${t}`,
          );
        }
      });
    },
  },
  {
    id: "quota_alert_topic",
    description: "The quota alert topic differs from the event topic and the dead-letter topic.",
    check(c, report) {
      const k = c.speed.quota_alerts.outputs.kafka;
      if (k.topic === c.source.kafka.topic || k.topic === c.source.kafka.dead_letter_topic) {
        report(
          "speed.quota_alerts.outputs.kafka.topic",
          `topic "${k.topic}" is also the event or dead-letter topic`,
        );
      }
    },
  },
  {
    id: "quota_alert_webhook_secret",
    description: "A quota alert webhook (`url`) has a `secret` to sign its deliveries with.",
    check(c, report) {
      const w = c.speed.quota_alerts.outputs.webhook;
      if (w.url !== undefined && w.secret === undefined) {
        report(
          "speed.quota_alerts.outputs.webhook.secret",
          "a webhook needs a secret: receivers check the X-Antenna-Signature header with it",
          "missing",
        );
      }
    },
  },
  {
    id: "distinct_ports",
    description: "The API and the embedded database serve on different ports.",
    check(c, report) {
      if (
        c.api.enabled && c.database.url === undefined && c.database.embedded.port === c.api.port &&
        c.database.embedded.port !== 0
      ) {
        report("api.port", `port ${c.api.port} is also database.embedded.port`);
      }
    },
  },
];
