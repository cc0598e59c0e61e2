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

/**
 * The one result a script writes, `${out}/hour`: rows tagged by `result`, so
 * a whole hour is one Spark job (each statement of its own costs a job and
 * its planning, seconds each on a busy machine). Columns: `result`, `item`
 * (STRING), `group_key` (STRING), `value`, `quota` (BIGINT).
 */
export const RESULT = "hour";

/** What each row of the result is. */
export const ROWS = {
  /** item = metric name, group_key = key, value. */
  metric: "metric",
  /** group_key = email of the snapshot, value = usage (NULL without any), quota. */
  email: "email",
  /** group_key = email, value = usage, quota: a quota breach. */
  breach: "breach",
  /** item = rows_read | unknown_devices | unknown_rows, value. */
  stat: "stat",
  /** group_key = an unknown device id (a few, for the log). */
  unknown: "unknown",
  /** item = reconciled speed metric, value = what the dropped rows add to it. */
  dropped: "dropped",
} as const;

/**
 * How many of a script's last statements compute the hour: caching the
 * joined rows, the `emails` view over them, and the statement that writes
 * the result. The ones before only declare the inputs.
 */
export const COMPUTE_STATEMENTS = 3;

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
    `SELECT '${ROWS.metric}' AS result, ${sqlString(m.name)} AS item, ${keyExpr} AS group_key,`,
    `  ${aggregateSql(m)} AS value, ${NO_NUMBER} AS quota`,
    `FROM joined${where.length ? ` WHERE ${where.join(" AND ")}` : ""}`,
    // Without a group, an aggregate of no rows is still one row: the core has none.
    key.length === 0 ? "HAVING count(*) > 0" : `GROUP BY ${keyExpr}`,
  ].join("\n");
}

/** What a reconciled speed metric counted of the dropped rows (core: value() summed). */
export function droppedSql(m: MetricPlan): string {
  const value = m.aggregation === "count" ? "1" : numeric(m.field);
  const where = ["NOT known", ...filterSql(m)];
  return `SELECT '${ROWS.dropped}', ${
    sqlString(m.name)
  }, ${NO_TEXT}, CAST(COALESCE(sum(${value}), 0) AS BIGINT), ${NO_NUMBER}
FROM joined WHERE ${where.join(" AND ")}`;
}

const NO_TEXT = "CAST(NULL AS STRING)";
const NO_NUMBER = "CAST(NULL AS BIGINT)";

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
  const rows = [
    ...batch.metrics.map((m) => metricSql(m, rowsKept)),
    `SELECT '${ROWS.email}', ${NO_TEXT}, email, usage, quota FROM emails`,
    ...(batch.quota.enabled
      ? [`SELECT '${ROWS.breach}', ${NO_TEXT}, email, usage, quota FROM emails WHERE usage > quota`]
      : []),
    `SELECT '${ROWS.stat}', s.item, ${NO_TEXT}, s.value, ${NO_NUMBER} FROM (\n` +
    "  SELECT stack(3, 'rows_read', rows_read, 'unknown_devices', unknown_devices,\n" +
    "    'unknown_rows', unknown_rows) AS (item, value)\n" +
    "  FROM (SELECT count(*) AS rows_read,\n" +
    "    count(DISTINCT CASE WHEN NOT known THEN id END) AS unknown_devices,\n" +
    "    count_if(NOT known) AS unknown_rows FROM joined)\n) s",
    `SELECT '${ROWS.unknown}', ${NO_TEXT}, id, ${NO_NUMBER}, ${NO_NUMBER} FROM (\n` +
    `  SELECT DISTINCT id FROM joined WHERE NOT known ORDER BY id LIMIT ${UNKNOWN_SAMPLE}\n)`,
    ...(policy === "drop" ? dropped.map(droppedSql) : []),
  ];
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
    // Every part of the result reads these rows. A view would be planned and run
    // again by each (EXPLAIN showed seven scans, dedupes and joins of the hour);
    // an eager cache reads, dedupes and joins the hour once.
    "CACHE TABLE joined AS\n" +
    "SELECT e.id, e.antenna_id, e.app, e.bytes, e.ts, u.id IS NOT NULL AS known,\n" +
    `  COALESCE(u.email, ${placeholder}) AS email, COALESCE(u.name, ${placeholder}) AS name\n` +
    "FROM events e LEFT JOIN users u ON e.id = u.id;",
    "CREATE OR REPLACE TEMPORARY VIEW emails AS\n" +
    "SELECT q.email, q.quota, d.usage\n" +
    "FROM (SELECT email, CAST(max(quota) AS BIGINT) AS quota FROM users GROUP BY email) q\n" +
    "LEFT JOIN (\n" +
    "  SELECT email, CAST(sum(device_usage) AS BIGINT) AS usage FROM (\n" +
    "    SELECT id, email, sum(bytes) AS device_usage FROM joined WHERE known GROUP BY id, email\n" +
    // The core has usage only when it read bytes (the quota or a metric needs them).
    `  ) WHERE device_usage > 0 GROUP BY email\n) d ON q.email = d.email${
      withUsage ? "" : " AND false"
    };`,
    `INSERT OVERWRITE DIRECTORY '\${out}/${RESULT}' USING parquet\n${rows.join("\nUNION ALL\n")};`,
  ];
  return parts.join("\n\n") + "\n";
}
