/**
 * The compiled, frozen plan that every layer runs from. `pipeline.yaml` is
 * parsed, linted and compiled into a `Plan` (see `compile.ts`); the runtime
 * never sees raw YAML. Durations are milliseconds, sizes are bytes, names that
 * reach SQL are already validated identifiers.
 */

/** Fields of a telemetry event, as published by the antennas. */
export type EventField = "bytes" | "timestamp" | "app" | "id" | "antenna_id";

/** Fields a batch metric may also group by, taken from the user metadata join. */
export type JoinedField = "email" | "name";

export type Aggregation = "sum" | "count" | "min" | "max" | "count_distinct";

/** An event filter: every listed field must match (AND). */
export interface FilterPlan {
  /** Field must be one of these values. */
  readonly in?: Readonly<Partial<Record<EventField | JoinedField, readonly (string | number)[]>>>;
  /** Field must be none of these values. */
  readonly notIn?: Readonly<
    Partial<Record<EventField | JoinedField, readonly (string | number)[]>>
  >;
}

export interface MetricPlan {
  /** Metric name; written to the `type` column. A validated SQL identifier. */
  readonly name: string;
  /** Group key fields; the key written to `id` is their values joined by `|`. */
  readonly groupBy: readonly (EventField | JoinedField)[];
  readonly aggregation: Aggregation;
  /** Field aggregated (ignored by `count`). Default `bytes`. */
  readonly field: EventField | JoinedField;
  readonly filter?: FilterPlan;
  readonly description?: string;
}

export interface KafkaSourcePlan {
  readonly brokers: readonly string[];
  readonly topic: string;
  readonly group: string;
  readonly clientId: string;
  readonly deadLetterTopic: string;
  /** Create the topics if missing (partitions used when creating). */
  readonly createTopics: boolean;
  readonly partitions: number;
  /** Where a new consumer group starts. */
  readonly fromBeginning: boolean;
}

export interface SimulatorPlan {
  readonly antennas: number;
  readonly devices: number;
  readonly apps: readonly string[];
  /** Events per second; 0 = as fast as possible (a nominal rate, consumer-bound). */
  readonly rate: number;
  readonly seed: number;
  /** Share (0..1) of events emitted late / out of order. */
  readonly lateShare: number;
  /** Share (0..1) of malformed messages. */
  readonly malformedShare: number;
  /** Max lateness of a late event, ms. */
  readonly maxLatenessMs: number;
  /** Longest backlog (downtime) caught up on at start, ms; older gaps are skipped. */
  readonly maxBacklogMs: number;
  /** On a fresh database, the first event time is this far before the wall clock. */
  readonly historyMs: number;
}

export interface SourcePlan {
  /** `kafka`: consume the topic. `simulator`: in-process generator, no Kafka. */
  readonly kind: "kafka" | "simulator";
  readonly kafka: KafkaSourcePlan;
  readonly simulator: SimulatorPlan;
}

export interface SchemaPlan {
  /** Larger payloads are dead-lettered (`oversized`). */
  readonly maxPayloadBytes: number;
  /** Earliest accepted event time, epoch ms. */
  readonly minTimestampMs: number;
  /** How far past the wall clock an event time may be, ms. */
  readonly maxFutureMs: number;
  readonly maxAppLength: number;
}

/** How a failed alert delivery is retried (exponential backoff, then a recorded failure). */
export interface RetryPlan {
  readonly maxAttempts: number;
  /** Wait before the second attempt, ms; doubles each time. */
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
}

/** The Kafka output of quota alerts: JSON keyed by email. */
export interface AlertKafkaPlan {
  readonly brokers: readonly string[];
  readonly topic: string;
  readonly clientId: string;
  readonly retry: RetryPlan;
}

/** The webhook output of quota alerts: signed JSON POSTs. */
export interface AlertWebhookPlan {
  readonly url: string;
  /** HMAC-SHA256 key of the signature header. */
  readonly secret: string;
  readonly timeoutMs: number;
  readonly concurrency: number;
  readonly retry: RetryPlan;
}

/** Real-time quota alerts (src/alerts). */
export interface QuotaAlertsPlan {
  readonly enabled: boolean;
  /** Shares of the quota, ascending, 4 decimals at most. */
  readonly thresholds: readonly number[];
  /** How often user_metadata is reloaded, ms. */
  readonly refreshIntervalMs: number;
  readonly outputs: {
    /** Undefined when off, or when there is no Kafka (simulator source, no brokers). */
    readonly kafka?: AlertKafkaPlan;
    /** Undefined without a url. */
    readonly webhook?: AlertWebhookPlan;
    /** The API's Server-Sent Events stream. */
    readonly stream: boolean;
  };
}

export interface SpeedPlan {
  readonly enabled: boolean;
  readonly windowMs: number;
  readonly allowedLatenessMs: number;
  /** Close open windows after this long without new events. */
  readonly idleTimeoutMs: number;
  /** How often dirty windows are flushed to PostgreSQL. */
  readonly flushIntervalMs: number;
  /**
   * Partial rows a partition may change while a flush is in flight; past it,
   * its consumption waits for the next flush to take them.
   */
  readonly maxDirtyRows: number;
  readonly metrics: readonly MetricPlan[];
  readonly quotaAlerts: QuotaAlertsPlan;
  /**
   * Past hours a new or changed metric's windows are recomputed from the lake
   * for; undefined = every hour the lake holds, 0 = none.
   */
  readonly backfillHours?: number;
}

export interface LakePlan {
  /** `file:///abs/path` or `gs://bucket/prefix`. */
  readonly uri: string;
  readonly kind: "file" | "gcs";
  /** Absolute folder (file) or bucket name (gcs). */
  readonly root: string;
  /** Key prefix inside the bucket ("" for file). */
  readonly prefix: string;
  /** GCS API endpoint override (emulator); undefined = Google. */
  readonly gcsEndpoint?: string;
  readonly gcsProjectId?: string;
  readonly roll: {
    readonly maxRows: number;
    readonly maxBytes: number;
    readonly maxAgeMs: number;
  };
  readonly compaction: {
    readonly enabled: boolean;
    /** An hour is compacted once the watermark is this far past its end. */
    readonly afterMs: number;
    /** Inputs averaging at least this many rows are copied row group by row group. */
    readonly copyMinRows: number;
  };
}

export type UnknownDevicePolicy = "unknown_id" | "drop" | "fail";

export interface QuotaPlan {
  readonly enabled: boolean;
  /** Metric name of the per-user usage (grouped by email). */
  readonly usageField: "bytes";
}

/** Dataproc Serverless as the Spark engine's cluster (batch.spark.dataproc). */
export interface DataprocPlan {
  readonly project: string;
  readonly region: string;
  readonly serviceAccount?: string;
  readonly subnetwork?: string;
  /** gs:// prefix for a batch's files; undefined = beside the lake. */
  readonly staging?: string;
  /** Dataproc API base URL. */
  readonly endpoint: string;
}

/** The Spark engine's settings (batch.spark). */
export interface SparkPlan {
  /** `--master` of spark-sql. */
  readonly master: string;
  /** SPARK_HOME; undefined = the environment's, else the stack's install. */
  readonly home?: string;
  /** Extra `--conf` settings. */
  readonly conf: Readonly<Record<string, string>>;
  /** A run is killed and fails after this long. */
  readonly timeoutMs: number;
  /** Undefined = spark-sql on `master`. */
  readonly dataproc?: DataprocPlan;
}

export interface BatchPlan {
  readonly enabled: boolean;
  /** Run hour H once H has ended plus this grace. */
  readonly graceMs: number;
  /** How often the scheduler wakes. */
  readonly tickMs: number;
  /** How far back the scheduler catches up after downtime. */
  readonly catchUpHours: number;
  /** A stale hour runs again this long after the first lake change its batch did not see. */
  readonly rerunAfterMs: number;
  /** How long a running run holds its hour without renewing its lease. */
  readonly runLeaseMs: number;
  readonly unknownDevice: {
    readonly policy: UnknownDevicePolicy;
    /** Value used for joined fields when policy is `unknown_id`. */
    readonly id: string;
  };
  readonly metrics: readonly (MetricPlan & {
    /** Speed metric this one reconciles with (same totals per hour). */
    readonly reconcileWith?: string;
  })[];
  readonly quota: QuotaPlan;
  /** Past hours re-run for a new or changed batch metric; undefined = every batched hour, 0 = none. */
  readonly backfillHours?: number;
  /** Where hours are computed: in this process, or as Spark SQL on `spark`. */
  readonly engine: "process" | "spark";
  readonly spark: SparkPlan;
}

export interface DatabasePlan {
  /** postgres:// URL; undefined = embedded PGlite. */
  readonly url?: string;
  readonly embedded: {
    /** Folder PGlite persists to. */
    readonly dir: string;
    readonly host: string;
    /** Port serving PGlite over the wire protocol (0 = off). */
    readonly port: number;
  };
  /** Refuse simulated events into a real database unless true. */
  readonly allowSimulatorWrites: boolean;
  readonly maxConnections: number;
}

export interface ApiPlan {
  readonly enabled: boolean;
  readonly host: string;
  readonly port: number;
  /** Bearer token for mutating routes; undefined = loopback only. */
  readonly token?: string;
}

export interface Plan {
  /** Absolute path of the file the plan came from ("<defaults>" if none). */
  readonly file: string;
  readonly source: SourcePlan;
  readonly schema: SchemaPlan;
  readonly speed: SpeedPlan;
  readonly lake: LakePlan;
  readonly batch: BatchPlan;
  readonly database: DatabasePlan;
  readonly api: ApiPlan;
}
