/**
 * Hours to run again (`backfill_hours`): a backfill of new or changed batch
 * metrics queues the batched hours, runs them one by one and records how each
 * ended; the batch layer's hour state counts an hour whose re-run failed after
 * its last success as stale (hour_state.ts), so the scheduler retries it.
 * The table is the batch layer's, beside `batch_hours` which its rule reads
 * with it: the backfill (a higher layer) calls these functions, where the
 * batch layer reading a backfill module would import up the layers.
 */
import type { Queryable } from "../db/db.ts";
import { intArray } from "../speed/mod.ts";

/** Hours the batch layer completed, at or after `fromMs`. */
export async function batchedHoursFrom(db: Queryable, fromMs: number): Promise<number[]> {
  const rows = await db.query<{ hour: Date }>(
    "SELECT hour FROM batch_hours WHERE ($1::timestamp IS NULL OR hour >= $1::timestamp) ORDER BY hour",
    [Number.isFinite(fromMs) ? new Date(fromMs) : null],
  );
  return rows.map((r) => r.hour.getTime());
}

/** Queues hours to run again for `topic`'s backfill (an hour queued already keeps its place and gains the metrics). */
export async function queueRedoHours(
  tx: Queryable,
  topic: string,
  hours: readonly number[],
  metrics: readonly string[],
): Promise<void> {
  if (hours.length === 0) return;
  await tx.query(
    `INSERT INTO backfill_hours (topic, hour, metrics)
     SELECT $1, TIMESTAMP 'epoch' + h * INTERVAL '1 millisecond', $3
     FROM unnest($2::bigint[]) AS h
     ON CONFLICT (topic, hour) DO UPDATE SET
       metrics = CASE WHEN backfill_hours.finished_at IS NULL
         THEN backfill_hours.metrics || ', ' || EXCLUDED.metrics ELSE EXCLUDED.metrics END,
       queued_at = CASE WHEN backfill_hours.finished_at IS NULL THEN backfill_hours.queued_at
         ELSE now() END,
       finished_at = NULL, status = NULL, run_id = NULL`,
    [topic, intArray(hours), metrics.join(", ")],
  );
}

/** The oldest queued hour not run yet. */
export async function nextRedoHour(db: Queryable, topic: string): Promise<number | undefined> {
  const rows = await db.query<{ hour: Date }>(
    `SELECT hour FROM backfill_hours WHERE topic = $1 AND finished_at IS NULL
     ORDER BY hour LIMIT 1`,
    [topic],
  );
  return rows[0]?.hour.getTime();
}

/** Records how the re-run of a queued hour ended (`status`: the batch run's). */
export async function finishRedoHour(
  db: Queryable,
  topic: string,
  hour: number,
  status: string,
  runId?: string,
): Promise<void> {
  await db.query(
    `UPDATE backfill_hours SET finished_at = now(), status = $3, run_id = $4
     WHERE topic = $1 AND hour = $2::timestamp`,
    [topic, new Date(hour), status, runId ?? null],
  );
}

/** Queued and finished hours, and the failed ones no run has succeeded for since. */
export async function redoHourCounts(
  db: Queryable,
  topic: string,
): Promise<{ queued: number; finished: number; failed: number }> {
  const rows = await db.query<{ queued: number; finished: number; failed: number }>(
    `SELECT count(*) FILTER (WHERE finished_at IS NULL)::int AS queued,
       count(*) FILTER (WHERE finished_at IS NOT NULL)::int AS finished,
       count(*) FILTER (WHERE status = 'failed' AND NOT EXISTS (
         SELECT 1 FROM batch_hours bh
         WHERE bh.hour = h.hour AND bh.completed_at > h.finished_at))::int AS failed
     FROM backfill_hours h WHERE topic = $1`,
    [topic],
  );
  return rows[0] ?? { queued: 0, finished: 0, failed: 0 };
}
