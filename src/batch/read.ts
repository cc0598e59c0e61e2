/**
 * Reading what the batch layer writes (write.ts) for the API: the per-hour
 * agreement of `batch_reconciliation`, and the fragments of the serving
 * statements that read the batch totals (`bytes_hourly`) and which hours are
 * batched and current. (Breaches are served from `users_over_quota`, through
 * src/alerts/store.ts.) The SQL of those tables lives with the folder that
 * owns them.
 */
import type { Queryable } from "../db/db.ts";

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
  /**
   * False while the speed side still has an open window in the hour (a
   * pending row): its speed value may still grow, so a difference is not yet
   * data gone missing.
   */
  readonly speedFinal: boolean;
}

const COLUMNS = "hour, metric, speed_metric, batch_value, speed_value, difference, " +
  "late_dropped, unknown_dropped, unexplained, speed_final";
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
    speedFinal: r.speed_final === true,
  }));
}

/**
 * The batch totals as a series: `bytes_hourly`'s rows (timestamp, id, value,
 * source, final) where `where` holds, all batched and final.
 *
 * @example
 * batchSeriesSql("type = $1 AND id = $4") // SELECT timestamp, id, value, 'batch' AS source, …
 */
export function batchSeriesSql(where: string): string {
  return `SELECT timestamp, id, value, 'batch' AS source, true AS final FROM bytes_hourly
    WHERE ${where}`;
}

/**
 * The batch totals of type `$1` in [`$2`, `$3`) (optionally of the id
 * placeholder `id`) in the hours whose batch is current (batched, and the
 * lake unchanged since), as serving_hourly takes them (sql/007). Columns:
 * timestamp, id, value, source, final.
 */
export function currentBatchHourlySql(id: string | undefined): string {
  return `SELECT h.timestamp, h.id, h.value, 'batch'::text AS source, true AS final
    FROM bytes_hourly h
    WHERE h.type = $1 AND h.timestamp >= $2::timestamp AND h.timestamp < $3::timestamp${
    id ? ` AND h.id = ${id}` : ""
  }
      AND EXISTS (SELECT 1 FROM batch_hours_current bh WHERE bh.hour = h.timestamp)`;
}

/**
 * A condition true when the batch layer does not answer type `$1` at the
 * hour `hour` (a column, e.g. `"s.timestamp"`): the type is no batch metric,
 * or the hour's batch is not current. The speed rows where it holds are the
 * merged series'.
 */
export function notBatchedSql(hour: string): string {
  return `NOT EXISTS (
      SELECT 1 FROM batch_hours_current bh
      JOIN metric_catalog bc ON bc.layer = 'batch' AND bc.type = $1
      WHERE bh.hour = ${hour})`;
}
