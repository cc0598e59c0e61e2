/**
 * The batch plan as Spark SQL: one script per plan that computes one hour
 * exactly as `computeHour()` (compute.ts) does, so `batch.engine: spark`
 * writes what `process` writes. Pure text, no I/O: the hour's folder, the
 * run's `user_metadata` snapshot and the output prefix are Spark SQL
 * variables (`${hour_dir}`, `${users}`, `${out}`), so the same text runs under
 * `spark-sql -d name=value -f` and as a Dataproc `SparkSqlBatch` with
 * `queryVariables`.
 *
 * Meanings shared with the in-process job, spelled here in SQL:
 * - rows are deduplicated on (Kafka partition, offset), as the lake reader does;
 * - a group key is the group_by values as strings joined by `|` (core/metric.ts),
 *   a timestamp counts in epoch seconds, a filter compares values as strings;
 * - unknown devices: `unknown_id` keeps them with the placeholder as email and
 *   name, `drop` leaves them out (and sums what the reconciled speed metrics
 *   counted of them), `fail` counts them (the engine then fails the run);
 * - usage per email is the sum of each known device's positive usage, the
 *   quota of an email the largest of its devices' (core/quota.ts), a breach
 *   is usage strictly above quota.
 * Sums are BIGINT (Spark 4 is ANSI: an overflow fails instead of wrapping).
 */
import type { BatchPlan, MetricPlan } from "../../config/plan.ts";
import { KEY_SEPARATOR, type MetricField, metricFields } from "../../core/metric.ts";
import { neededColumns } from "../compute.ts";

/** The results a script writes under `${out}`, one Parquet folder each. */
export const RESULTS = {
  /** (metric STRING, group_key STRING, value BIGINT): every batch metric. */
  metrics: "metrics",
  /** (email STRING, quota BIGINT, usage BIGINT or NULL): every email of the snapshot. */
  emails: "emails",
  /** (email STRING, usage BIGINT, quota BIGINT): the quota breaches. */
  breaches: "breaches",
  /** One row (rows_read, unknown_devices, unknown_rows BIGINT). */
  stats: "stats",
  /** (id STRING): up to five unknown device ids, for the log. */
  unknown: "unknown",
  /** (metric STRING, value BIGINT): what the dropped rows add to reconciled speed metrics. */
  dropped: "dropped",
} as const;

/** Names of the variables a script reads. */
export const VARIABLES = ["hour_dir", "users", "out"] as const;
export type ScriptVariables = Record<typeof VARIABLES[number], string>;

/** How many unknown device ids the script names (HourResult.unknownSample). */
export const UNKNOWN_SAMPLE = 5;

/**
 * A Spark SQL string literal of any text. Everything but plain characters is
 * a `\uXXXX` escape, so no value can end the literal, split the script at a
 * `;` or look like a `${variable}` to substitution.
 */
export function sqlString(value: string): string {
  let out = "";
  for (const ch of value) {
    if (/^[A-Za-z0-9 _.,:@|+=*#%&()<>!?~^-]$/.test(ch)) out += ch;
    else {
      for (let i = 0; i < ch.length; i++) {
        out += "\\u" + ch.charCodeAt(i).toString(16).padStart(4, "0");
      }
    }
  }
  return `'${out}'`;
}

/** A field of a joined row as a number (what sum, min and max read). */
function numeric(field: MetricField): string {
  if (field === "bytes") return "bytes";
  if (field === "timestamp") return "ts";
  throw new TypeError(`"${field}" is not numeric`);
}

/** A field of a joined row as the string the core compares and keys with (String(value)). */
function text(field: MetricField): string {
  if (field === "bytes" || field === "timestamp") return `CAST(${numeric(field)} AS STRING)`;
  return `\`${field}\``;
}

/** The WHERE conditions of a metric's filter, as the core's `accepts()`. */
function filterSql(m: MetricPlan): string[] {
  const out: string[] = [];
  const list = (values: readonly (string | number)[] | undefined) =>
    (values ?? []).map((v) => sqlString(String(v))).join(", ");
  for (const [field, values] of Object.entries(m.filter?.in ?? {})) {
    out.push(`${text(field as MetricField)} IN (${list(values)})`);
  }
  for (const [field, values] of Object.entries(m.filter?.notIn ?? {})) {
    out.push(`${text(field as MetricField)} NOT IN (${list(values)})`);
  }
  return out;
}

/** The value a metric aggregates over its group, as BIGINT. */
function aggregateSql(m: MetricPlan): string {
  switch (m.aggregation) {
    case "count":
      return "count(*)";
    case "count_distinct":
      return `count(DISTINCT ${text(m.field)})`;
    case "sum":
      return `CAST(sum(${numeric(m.field)}) AS BIGINT)`;
    case "min":
      return `CAST(min(${numeric(m.field)}) AS BIGINT)`;
    case "max":
      return `CAST(max(${numeric(m.field)}) AS BIGINT)`;
  }
}

/** One batch metric's rows of the `metrics` result. */
export function metricSql(m: MetricPlan, rowsKept: string): string {
  const { key } = metricFields(m);
  const keyExpr = key.length === 0
    ? "''"
    : key.length === 1
    ? text(key[0])
    : `concat_ws(${sqlString(KEY_SEPARATOR)}, ${key.map(text).join(", ")})`;
  const where = [rowsKept, ...filterSql(m)].filter(Boolean);
  return [
    `SELECT ${sqlString(m.name)} AS metric, ${keyExpr} AS group_key, ${aggregateSql(m)} AS value`,
    `FROM joined${where.length ? ` WHERE ${where.join(" AND ")}` : ""}`,
    // Without a group, an aggregate of no rows is still one row: the core has none.
    key.length === 0 ? "HAVING count(*) > 0" : `GROUP BY ${keyExpr}`,
  ].join("\n");
}

/** What a reconciled speed metric counted of the dropped rows (core: value() summed). */
export function droppedSql(m: MetricPlan): string {
  const value = m.aggregation === "count" ? "1" : numeric(m.field);
  const where = ["NOT known", ...filterSql(m)];
  return `SELECT ${sqlString(m.name)} AS metric, CAST(COALESCE(sum(${value}), 0) AS BIGINT) AS value
FROM joined WHERE ${where.join(" AND ")}`;
}

function insert(result: string, select: string): string {
  return `INSERT OVERWRITE DIRECTORY '\${out}/${result}' USING parquet\n${select};`;
}

/** An empty result with the columns the engine reads (a plan with no metrics). */
const NO_METRICS =
  "SELECT CAST(NULL AS STRING) AS metric, CAST(NULL AS STRING) AS group_key, CAST(NULL AS BIGINT) AS value WHERE false";

/**
 * The Spark SQL script of one hour of `batch`. `dropped`: the speed metrics the
 * batch ones reconcile with (catalog.ts reconciledSpeedMetrics).
 *
 * @example
 * const sql = renderHourScript(plan.batch, reconciledSpeedMetrics(plan));
 * // spark-sql -d hour_dir=file:///lake/year=2026/month=11/day=28/hour=10 -d users=… -d out=… -f hour.sql
 */
export function renderHourScript(batch: BatchPlan, dropped: readonly MetricPlan[] = []): string {
  const policy = batch.unknownDevice.policy;
  const placeholder = sqlString(batch.unknownDevice.id);
  // The core's usage needs the bytes column, which the job reads only when asked for.
  const withUsage = neededColumns(batch, dropped).includes("bytes");
  const rowsKept = policy === "unknown_id" ? "" : "known";
  const metrics = batch.metrics.map((m) => metricSql(m, rowsKept));
  const parts = [
    "-- One hour of the antenna-lambda batch layer, generated by src/batch/spark/render.ts.",
    "SET spark.sql.session.timeZone=UTC;",
    "SET spark.sql.ansi.enabled=true;",
    // Only the lake's own files (the reader's naming rule): no temporary or foreign files.
    "CREATE OR REPLACE TEMPORARY VIEW lake_rows USING parquet\n" +
    "OPTIONS (path '${hour_dir}', pathGlobFilter 'part-p*.parquet');",
    // A replayed segment or a compacted file beside its inputs holds rows twice.
    "CREATE OR REPLACE TEMPORARY VIEW events AS\n" +
    "SELECT `id`, `antenna_id`, `app`, `bytes`, unix_seconds(`timestamp`) AS ts FROM (\n" +
    "  SELECT *, row_number() OVER (PARTITION BY `partition`, `offset` ORDER BY `offset`) AS copy\n" +
    "  FROM lake_rows\n) WHERE copy = 1;",
    "CREATE OR REPLACE TEMPORARY VIEW users USING parquet OPTIONS (path '${users}');",
    // Read once, then every result below folds the cached rows.
    "CACHE TABLE joined AS\n" +
    "SELECT e.id, e.antenna_id, e.app, e.bytes, e.ts, u.id IS NOT NULL AS known,\n" +
    `  COALESCE(u.email, ${placeholder}) AS email, COALESCE(u.name, ${placeholder}) AS name\n` +
    "FROM events e LEFT JOIN users u ON e.id = u.id;",
    insert(RESULTS.metrics, metrics.length ? metrics.join("\nUNION ALL\n") : NO_METRICS),
    "CREATE OR REPLACE TEMPORARY VIEW emails AS\n" +
    "SELECT q.email, q.quota, d.usage\n" +
    "FROM (SELECT email, CAST(max(quota) AS BIGINT) AS quota FROM users GROUP BY email) q\n" +
    "LEFT JOIN (\n" +
    "  SELECT email, CAST(sum(device_usage) AS BIGINT) AS usage FROM (\n" +
    "    SELECT id, email, sum(bytes) AS device_usage FROM joined WHERE known GROUP BY id, email\n" +
    `  ) WHERE device_usage > 0 GROUP BY email\n) d ON q.email = d.email${withUsage ? "" : " AND false"};`,
    insert(RESULTS.emails, "SELECT email, quota, usage FROM emails"),
    insert(
      RESULTS.breaches,
      batch.quota.enabled
        ? "SELECT email, usage, quota FROM emails WHERE usage > quota"
        : "SELECT email, usage, quota FROM emails WHERE false",
    ),
    insert(
      RESULTS.stats,
      "SELECT count(*) AS rows_read,\n" +
        "  count(DISTINCT CASE WHEN NOT known THEN id END) AS unknown_devices,\n" +
        "  count_if(NOT known) AS unknown_rows\nFROM joined",
    ),
    insert(
      RESULTS.unknown,
      `SELECT DISTINCT id FROM joined WHERE NOT known ORDER BY id LIMIT ${UNKNOWN_SAMPLE}`,
    ),
  ];
  if (policy === "drop" && dropped.length > 0) {
    parts.push(insert(RESULTS.dropped, dropped.map(droppedSql).join("\nUNION ALL\n")));
  }
  return parts.join("\n\n") + "\n";
}
