/**
 * Reading what the batch layer writes (write.ts) for the API: the quota
 * breaches of `user_quota_limit` and the per-hour agreement of
 * `batch_reconciliation`. The SQL of those tables lives with the folder that
 * owns them.
 */
import type { Queryable } from "../db/db.ts";

/** A user over their quota in an hour. */
export interface Breach {
  readonly email: string;
  readonly usage: number;
  readonly quota: number;
  /** Start of the hour, epoch ms. */
  readonly hour: number;
}

const BREACHES_SQL = `SELECT email, usage, quota, timestamp FROM user_quota_limit
  WHERE timestamp >= $1::timestamp AND timestamp < $2::timestamp
  ORDER BY timestamp, usage DESC, email LIMIT 10000`;
const BREACHES_OF_SQL = `SELECT email, usage, quota, timestamp FROM user_quota_limit
  WHERE timestamp >= $1::timestamp AND timestamp < $2::timestamp AND email = $3
  ORDER BY timestamp LIMIT 10000`;

/** Breaches of the hours in [`from`, `to`) (at most 10,000), optionally of one user. */
export async function readBreaches(
  db: Queryable,
  from: number,
  to: number,
  email?: string,
): Promise<Breach[]> {
  const rows = await db.query<{ email: string; usage: unknown; quota: unknown; timestamp: Date }>(
    email === undefined ? BREACHES_SQL : BREACHES_OF_SQL,
    email === undefined ? [new Date(from), new Date(to)] : [new Date(from), new Date(to), email],
  );
  return rows.map((r) => ({
    email: r.email,
    usage: Number(r.usage),
    quota: Number(r.quota),
    hour: r.timestamp.getTime(),
  }));
}

/** One hour and batch metric of the reconciliation (batch_reconciliation). */
export interface ReconciliationRow {
  readonly hour: number;
  readonly metric: string;
  readonly speedMetric: string;
  readonly batchValue: number;
  readonly speedValue: number;
  readonly difference: number;
  readonly lateDropped: number;
  readonly unknownDropped: number;
  readonly unexplained: number;
}

const COLUMNS = "hour, metric, speed_metric, batch_value, speed_value, difference, " +
  "late_dropped, unknown_dropped, unexplained";
const RECONCILIATION_SQL = `SELECT ${COLUMNS}
  FROM batch_reconciliation
  WHERE hour >= $1::timestamp AND hour < $2::timestamp
  ORDER BY hour, metric`;
const RECONCILIATION_OF_SQL = `SELECT ${COLUMNS}
  FROM batch_reconciliation
  WHERE hour >= $1::timestamp AND hour < $2::timestamp AND metric = $3
  ORDER BY hour`;

/** The reconciliation of the hours in [`from`, `to`), optionally of one metric. */
export async function readReconciliation(
  db: Queryable,
  from: number,
  to: number,
  metric?: string,
): Promise<ReconciliationRow[]> {
  const params: unknown[] = [new Date(from), new Date(to)];
  if (metric !== undefined) params.push(metric);
  const rows = await db.query<Record<string, unknown>>(
    metric === undefined ? RECONCILIATION_SQL : RECONCILIATION_OF_SQL,
    params,
  );
  return rows.map((r) => ({
    hour: (r.hour as Date).getTime(),
    metric: String(r.metric),
    speedMetric: String(r.speed_metric),
    batchValue: Number(r.batch_value),
    speedValue: Number(r.speed_value),
    difference: Number(r.difference),
    lateDropped: Number(r.late_dropped),
    unknownDropped: Number(r.unknown_dropped),
    unexplained: Number(r.unexplained),
  }));
}
