/**
 * Which pipeline.yaml keys a running pipeline applies live and which only a
 * restart applies, in one table: every leaf key of the spec appears here once
 * (tests/config/reload_test.ts fails when a spec field is missing), with how
 * to read it from a `Plan`, and either the parts that apply it live or why a
 * restart is needed. `diffPlans` (diff.ts) and the reference doc read it.
 */
import type { Plan } from "./plan.ts";

/** A part of the running pipeline that applies a live change. */
export type ReloadPart = "speed" | "batch" | "scheduler" | "backfill" | "api";

export interface ReloadKey {
  /** The key as written in pipeline.yaml, e.g. `speed.window`. */
  readonly key: string;
  /** Its compiled value. */
  readonly read: (plan: Plan) => unknown;
  /** Live: the parts that apply it (the first is where it matters most). */
  readonly live?: readonly ReloadPart[];
  /** Restart-only: why the running pipeline cannot take it. */
  readonly restart?: string;
  /** Values are not shown in messages (passwords, tokens). */
  readonly secret?: boolean;
}

const SOURCE = "the source is opened once, at start";
const KAFKA = "the Kafka consumer, its topic and group are set up once, at start";
const SIMULATOR = "the simulator's timeline is set up once, at start";
const LAKE = "the lake is opened once, at start";
const DATABASE = "the database is opened once, at start";
const API = "the API listens once, at start";
// Thresholds and outputs are fixed for a running detector so that every
// (email, hour, threshold) is judged by one rule: a restart applies them.
const ALERTS = "quota alerts (users, detector, outputs and their outbox) start once, at start";

const kafka = (key: string, read: (k: Plan["source"]["kafka"]) => unknown): ReloadKey => ({
  key: `source.kafka.${key}`,
  read: (p) => read(p.source.kafka),
  restart: KAFKA,
});
const simulator = (
  key: string,
  read: (s: Plan["source"]["simulator"]) => unknown,
): ReloadKey => ({
  key: `source.simulator.${key}`,
  read: (p) => read(p.source.simulator),
  restart: SIMULATOR,
});
const speed = (key: string, read: (p: Plan) => unknown): ReloadKey => ({
  key,
  read,
  live: ["speed"],
});
const alerts = (key: string, read: (q: Plan["speed"]["quotaAlerts"]) => unknown): ReloadKey => ({
  key: `speed.quota_alerts.${key}`,
  read: (p) => read(p.speed.quotaAlerts),
  restart: ALERTS,
});
const batch = (key: string, read: (b: Plan["batch"]) => unknown): ReloadKey => ({
  key: `batch.${key}`,
  read: (p) => read(p.batch),
  live: ["batch", "scheduler"],
});

/** Every leaf key of the spec, in spec order. Metric lists are one key each. */
export const RELOAD_KEYS: readonly ReloadKey[] = [
  { key: "source.kind", read: (p) => p.source.kind, restart: SOURCE },
  kafka("brokers", (k) => k.brokers),
  kafka("topic", (k) => k.topic),
  kafka("group", (k) => k.group),
  kafka("client_id", (k) => k.clientId),
  kafka("dead_letter_topic", (k) => k.deadLetterTopic),
  kafka("create_topics", (k) => k.createTopics),
  kafka("partitions", (k) => k.partitions),
  kafka("from_beginning", (k) => k.fromBeginning),
  simulator("antennas", (s) => s.antennas),
  simulator("devices", (s) => s.devices),
  simulator("apps", (s) => s.apps),
  simulator("rate", (s) => s.rate),
  simulator("seed", (s) => s.seed),
  simulator("late_share", (s) => s.lateShare),
  simulator("malformed_share", (s) => s.malformedShare),
  simulator("max_lateness", (s) => s.maxLatenessMs),
  simulator("max_backlog", (s) => s.maxBacklogMs),
  simulator("history", (s) => s.historyMs),
  speed("schema.max_payload_bytes", (p) => p.schema.maxPayloadBytes),
  speed("schema.min_timestamp", (p) => p.schema.minTimestampMs),
  speed("schema.max_future", (p) => p.schema.maxFutureMs),
  speed("schema.max_app_length", (p) => p.schema.maxAppLength),
  {
    key: "speed.enabled",
    read: (p) => p.speed.enabled,
    restart: "the speed layer is started, or not, once at start",
  },
  {
    key: "speed.window",
    read: (p) => p.speed.windowMs,
    restart: "every stored window, the lake's completeness and the hourly reconciliation " +
      "depend on the window length",
  },
  {
    key: "speed.allowed_lateness",
    read: (p) => p.speed.allowedLatenessMs,
    restart: "every partition's watermark, and so which events were counted, depends on it",
  },
  speed("speed.idle_timeout", (p) => p.speed.idleTimeoutMs),
  speed("speed.flush_interval", (p) => p.speed.flushIntervalMs),
  speed("speed.max_dirty_rows", (p) => p.speed.maxDirtyRows),
  { key: "speed.metrics", read: (p) => p.speed.metrics, live: ["speed", "backfill", "api"] },
  { key: "speed.backfill_hours", read: (p) => p.speed.backfillHours, live: ["backfill"] },
  alerts("enabled", (q) => q.enabled),
  alerts("thresholds", (q) => q.thresholds),
  alerts("hour", () => "event_time"),
  alerts("refresh_interval", (q) => q.refreshIntervalMs),
  alerts("outputs.kafka.enabled", (q) => q.outputs.kafka !== undefined),
  alerts("outputs.kafka.topic", (q) => q.outputs.kafka?.topic),
  alerts("outputs.kafka.brokers", (q) => q.outputs.kafka?.brokers),
  alerts("outputs.kafka.retry.max_attempts", (q) => q.outputs.kafka?.retry.maxAttempts),
  alerts("outputs.kafka.retry.backoff", (q) => q.outputs.kafka?.retry.backoffMs),
  alerts("outputs.kafka.retry.max_backoff", (q) => q.outputs.kafka?.retry.maxBackoffMs),
  alerts("outputs.webhook.url", (q) => q.outputs.webhook?.url),
  { ...alerts("outputs.webhook.secret", (q) => q.outputs.webhook?.secret), secret: true },
  alerts("outputs.webhook.timeout", (q) => q.outputs.webhook?.timeoutMs),
  alerts("outputs.webhook.concurrency", (q) => q.outputs.webhook?.concurrency),
  alerts("outputs.webhook.retry.max_attempts", (q) => q.outputs.webhook?.retry.maxAttempts),
  alerts("outputs.webhook.retry.backoff", (q) => q.outputs.webhook?.retry.backoffMs),
  alerts("outputs.webhook.retry.max_backoff", (q) => q.outputs.webhook?.retry.maxBackoffMs),
  alerts("outputs.stream.enabled", (q) => q.outputs.stream),
  { key: "lake.uri", read: (p) => p.lake.uri, restart: LAKE },
  { key: "lake.gcs_endpoint", read: (p) => p.lake.gcsEndpoint, restart: LAKE, secret: true },
  { key: "lake.gcs_project_id", read: (p) => p.lake.gcsProjectId, restart: LAKE },
  speed("lake.roll.max_rows", (p) => p.lake.roll.maxRows),
  speed("lake.roll.max_bytes", (p) => p.lake.roll.maxBytes),
  speed("lake.roll.max_age", (p) => p.lake.roll.maxAgeMs),
  speed("lake.compaction.enabled", (p) => p.lake.compaction.enabled),
  speed("lake.compaction.after", (p) => p.lake.compaction.afterMs),
  speed("lake.compaction.copy_min_rows", (p) => p.lake.compaction.copyMinRows),
  { key: "batch.enabled", read: (p) => p.batch.enabled, live: ["scheduler"] },
  batch("grace", (b) => b.graceMs),
  batch("rerun_after", (b) => b.rerunAfterMs),
  batch("run_lease", (b) => b.runLeaseMs),
  batch("tick", (b) => b.tickMs),
  batch("catch_up_hours", (b) => b.catchUpHours),
  batch("unknown_device.policy", (b) => b.unknownDevice.policy),
  batch("unknown_device.id", (b) => b.unknownDevice.id),
  { key: "batch.metrics", read: (p) => p.batch.metrics, live: ["batch", "backfill", "api"] },
  { key: "batch.backfill_hours", read: (p) => p.batch.backfillHours, live: ["backfill"] },
  batch("quota.enabled", (b) => b.quota.enabled),
  // Each run builds its engine from the plan of the moment it starts.
  batch("engine", (b) => b.engine),
  batch("spark.master", (b) => b.spark.master),
  batch("spark.home", (b) => b.spark.home),
  batch("spark.conf", (b) => b.spark.conf),
  batch("spark.timeout", (b) => b.spark.timeoutMs),
  batch("spark.dataproc.project", (b) => b.spark.dataproc?.project),
  batch("spark.dataproc.region", (b) => b.spark.dataproc?.region),
  batch("spark.dataproc.service_account", (b) => b.spark.dataproc?.serviceAccount),
  batch("spark.dataproc.subnetwork", (b) => b.spark.dataproc?.subnetwork),
  batch("spark.dataproc.staging", (b) => b.spark.dataproc?.staging),
  batch("spark.dataproc.endpoint", (b) => b.spark.dataproc?.endpoint),
  { key: "database.url", read: (p) => p.database.url, restart: DATABASE, secret: true },
  { key: "database.embedded.dir", read: (p) => p.database.embedded.dir, restart: DATABASE },
  { key: "database.embedded.host", read: (p) => p.database.embedded.host, restart: DATABASE },
  { key: "database.embedded.port", read: (p) => p.database.embedded.port, restart: DATABASE },
  {
    key: "database.allow_simulator_writes",
    read: (p) => p.database.allowSimulatorWrites,
    restart: "whether simulated events may reach the database is checked once, at start",
  },
  {
    key: "database.max_connections",
    read: (p) => p.database.maxConnections,
    restart: DATABASE,
  },
  { key: "api.enabled", read: (p) => p.api.enabled, restart: API },
  { key: "api.host", read: (p) => p.api.host, restart: API },
  { key: "api.port", read: (p) => p.api.port, restart: API },
  {
    key: "api.token",
    read: (p) => p.api.token,
    restart: "the API's guard of mutating routes is set up once, at start",
    secret: true,
  },
];
