/**
 * Compiles a linted, resolved config into the frozen `Plan` every layer runs
 * from: camelCase names, paths made absolute against the config file's folder,
 * the lake URI split into kind/root/prefix. It assumes the linter found no
 * problem, so it only maps; it never validates.
 */

import { dirname, isAbsolute, resolve } from "node:path";
import type {
  FilterPlan,
  LakePlan,
  MetricPlan,
  Plan,
  QuotaAlertsPlan,
  RetryPlan,
  SparkPlan,
} from "./plan.ts";
import type {
  BatchFilterConfig,
  BatchMetricConfig,
  PipelineConfig,
  SpeedFilterConfig,
  SpeedMetricConfig,
} from "./types.gen.ts";

/** Where the built-in pipeline "comes from" in `Plan.file` and in problems. */
export const DEFAULTS_FILE = "<defaults>";

/** Freezes `value` and everything reachable from it. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function compileFilter(
  f: SpeedFilterConfig | BatchFilterConfig | undefined,
): FilterPlan | undefined {
  if (!f) return undefined;
  const out: { in?: FilterPlan["in"]; notIn?: FilterPlan["notIn"] } = {};
  if (f.in && Object.keys(f.in).length > 0) out.in = { ...f.in };
  if (f.not_in && Object.keys(f.not_in).length > 0) out.notIn = { ...f.not_in };
  return out.in || out.notIn ? out : undefined;
}

function compileMetric(m: SpeedMetricConfig | BatchMetricConfig): MetricPlan {
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

function compileLake(c: PipelineConfig["lake"], baseDir: string): LakePlan {
  const common = {
    gcsEndpoint: c.gcs_endpoint,
    gcsProjectId: c.gcs_project_id,
    roll: { maxRows: c.roll.max_rows, maxBytes: c.roll.max_bytes, maxAgeMs: c.roll.max_age },
    compaction: {
      enabled: c.compaction.enabled,
      afterMs: c.compaction.after,
      copyMinRows: c.compaction.copy_min_rows,
    },
  };
  if (c.uri.startsWith("gs://")) {
    const rest = c.uri.slice("gs://".length);
    const slash = rest.indexOf("/");
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? "" : rest.slice(slash + 1).replace(/^\/+|\/+$/g, "");
    return {
      uri: `gs://${bucket}${prefix ? "/" + prefix : ""}`,
      kind: "gcs",
      root: bucket,
      prefix,
      ...common,
    };
  }
  const path = decodeURIComponent(c.uri.slice("file://".length));
  const root = isAbsolute(path) ? resolve(path) : resolve(baseDir, path);
  return { uri: `file://${root}`, kind: "file", root, prefix: "", ...common };
}

function compileRetry(
  r: { max_attempts: number; backoff: number; max_backoff: number },
): RetryPlan {
  return { maxAttempts: r.max_attempts, backoffMs: r.backoff, maxBackoffMs: r.max_backoff };
}

/**
 * The quota alerts of the plan. The Kafka output needs a Kafka: the source's
 * when it is `kafka`, else explicit brokers; with the simulator and no brokers
 * it is off (the log of `start` says so).
 */
function compileQuotaAlerts(c: PipelineConfig): QuotaAlertsPlan {
  const q = c.speed.quota_alerts;
  const k = q.outputs.kafka;
  const brokers = k.brokers ?? (c.source.kind === "kafka" ? c.source.kafka.brokers : undefined);
  const w = q.outputs.webhook;
  return {
    enabled: q.enabled,
    thresholds: [...q.thresholds].sort((a, b) => a - b),
    refreshIntervalMs: q.refresh_interval,
    outputs: {
      ...(k.enabled && brokers
        ? {
          kafka: {
            brokers: [...brokers],
            topic: k.topic,
            clientId: `${c.source.kafka.client_id}-alerts`,
            retry: compileRetry(k.retry),
          },
        }
        : {}),
      ...(w.url !== undefined && w.secret !== undefined
        ? {
          webhook: {
            url: w.url,
            secret: w.secret,
            timeoutMs: w.timeout,
            concurrency: w.concurrency,
            retry: compileRetry(w.retry),
          },
        }
        : {}),
      stream: q.outputs.stream.enabled,
    },
  };
}

/**
 * The frozen plan of a resolved config. `file` is the config's absolute path
 * (relative paths resolve against its folder) or `DEFAULTS_FILE` (against the
 * working directory).
 */
export function compilePlan(c: PipelineConfig, file: string): Plan {
  const baseDir = file === DEFAULTS_FILE ? Deno.cwd() : dirname(resolve(file));
  const k = c.source.kafka;
  const s = c.source.simulator;
  const plan: Plan = {
    file: file === DEFAULTS_FILE ? file : resolve(file),
    source: {
      kind: c.source.kind,
      kafka: {
        brokers: [...k.brokers],
        topic: k.topic,
        group: k.group,
        clientId: k.client_id,
        deadLetterTopic: k.dead_letter_topic,
        createTopics: k.create_topics,
        partitions: k.partitions,
        fromBeginning: k.from_beginning,
      },
      simulator: {
        antennas: s.antennas,
        devices: s.devices,
        apps: [...s.apps],
        rate: s.rate,
        seed: s.seed,
        lateShare: s.late_share,
        malformedShare: s.malformed_share,
        maxLatenessMs: s.max_lateness,
        maxBacklogMs: s.max_backlog,
        historyMs: s.history,
      },
    },
    schema: {
      maxPayloadBytes: c.schema.max_payload_bytes,
      minTimestampMs: c.schema.min_timestamp,
      maxFutureMs: c.schema.max_future,
      maxAppLength: c.schema.max_app_length,
    },
    speed: {
      enabled: c.speed.enabled,
      windowMs: c.speed.window,
      allowedLatenessMs: c.speed.allowed_lateness,
      idleTimeoutMs: c.speed.idle_timeout,
      flushIntervalMs: c.speed.flush_interval,
      maxDirtyRows: c.speed.max_dirty_rows,
      metrics: c.speed.metrics.map(compileMetric),
      quotaAlerts: compileQuotaAlerts(c),
      ...(c.speed.backfill_hours !== undefined ? { backfillHours: c.speed.backfill_hours } : {}),
    },
    lake: compileLake(c.lake, baseDir),
    batch: {
      enabled: c.batch.enabled,
      graceMs: c.batch.grace,
      tickMs: c.batch.tick,
      catchUpHours: c.batch.catch_up_hours,
      rerunAfterMs: c.batch.rerun_after,
      runLeaseMs: c.batch.run_lease,
      unknownDevice: { policy: c.batch.unknown_device.policy, id: c.batch.unknown_device.id },
      metrics: c.batch.metrics.map((m) => ({
        ...compileMetric(m),
        ...(m.reconcile_with !== undefined ? { reconcileWith: m.reconcile_with } : {}),
      })),
      quota: { enabled: c.batch.quota.enabled, usageField: "bytes" },
      ...(c.batch.backfill_hours !== undefined ? { backfillHours: c.batch.backfill_hours } : {}),
      engine: c.batch.engine,
      spark: compileSpark(c.batch.spark),
    },
    database: {
      url: c.database.url,
      embedded: {
        dir: resolve(baseDir, c.database.embedded.dir),
        host: c.database.embedded.host,
        port: c.database.embedded.port,
      },
      allowSimulatorWrites: c.database.allow_simulator_writes,
      maxConnections: c.database.max_connections,
    },
    api: {
      enabled: c.api.enabled,
      host: c.api.host,
      port: c.api.port,
      token: c.api.token,
    },
  };
  return deepFreeze(plan);
}

/** batch.spark: `conf` lines become a map (a later line wins), Dataproc is on with a project. */
function compileSpark(s: PipelineConfig["batch"]["spark"]): SparkPlan {
  const conf: Record<string, string> = {};
  for (const line of s.conf) {
    const at = line.indexOf("=");
    conf[line.slice(0, at)] = line.slice(at + 1);
  }
  const d = s.dataproc;
  return {
    master: s.master,
    ...(s.home !== undefined ? { home: s.home } : {}),
    conf,
    timeoutMs: s.timeout,
    ...(d.project !== undefined && d.region !== undefined
      ? {
        dataproc: {
          project: d.project,
          region: d.region,
          ...(d.service_account !== undefined ? { serviceAccount: d.service_account } : {}),
          ...(d.subnetwork !== undefined ? { subnetwork: d.subnetwork } : {}),
          ...(d.staging !== undefined ? { staging: d.staging } : {}),
          endpoint: d.endpoint,
        },
      }
      : {}),
  };
}
