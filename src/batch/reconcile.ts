/**
 * Reconciliation of an hour's batch totals with the speed layer's: the rule
 * (pure, `reconcile`), the speed side as `bytes` shows it (read from the
 * speed layer's hourly totals, sql/012_speed_hourly.sql), and the
 * recomputation of rows computed before every speed window of their hour was
 * closed. A difference counts as unexplained (data went missing) only once
 * the speed side is final: the last windows of an idle-ending stream close
 * at the idle timeout, possibly after the hour was batched.
 */
import type { Db, Queryable } from "../db/db.ts";
import type { Logger } from "../log.ts";
import { hourLabel, sqlHour } from "./hours.ts";
import type { BatchTelemetry } from "./telemetry.ts";

/** What the speed layer says about one metric's hour. */
export interface SpeedSide {
  /** The hour's total of the windows `bytes` shows (closed on their partition). */
  readonly value: number;
  /** What the speed layer dropped as too late in that hour (the batch has it). */
  readonly lateDropped: number;
  /** Every window written into the hour is closed on its partition. */
  readonly final: boolean;
}

/** One reconciled metric's numbers. */
export interface Reconciled {
  readonly speedValue: number;
  readonly difference: number;
  readonly lateDropped: number;
  /** Zero until the speed side is final. */
  readonly unexplained: number;
  readonly speedFinal: boolean;
}

/**
 * The rule: what the speed layer dropped as too late explains a positive
 * difference, the rows of unknown devices the batch dropped a negative one;
 * the rest is lost data, but only once every speed window of the hour is
 * closed: before that, windows still to close explain any difference.
 *
 * @example
 * reconcile(100, 0, { value: 90, lateDropped: 10, final: true }).unexplained // 0
 */
export function reconcile(
  batchValue: number,
  unknownDropped: number,
  speed: SpeedSide,
): Reconciled {
  const difference = batchValue - speed.value;
  return {
    speedValue: speed.value,
    difference,
    lateDropped: speed.lateDropped,
    unexplained: speed.final ? difference - speed.lateDropped + unknownDropped : 0,
    speedFinal: speed.final,
  };
}

/**
 * The speed side of `hour` for each of `speedMetrics`, read in `tx`. The sum
 * of a partition's hourly total is what `bytes` shows once the partition's
 * watermark has passed the newest window written into the hour; only the
 * partitions with a window still open fold their partials as `bytes` does.
 */
export async function readSpeedSide(
  tx: Queryable,
  hour: number,
  speedMetrics: readonly string[],
  /** Leave out metrics whose speed side is not final (and never fold partials). */
  finalOnly = false,
): Promise<Map<string, SpeedSide>> {
  const h = sqlHour(hour);
  const totals = await tx.query<{ type: string; closed: number | string; open: number[] | null }>(
    `SELECT t.type,
       COALESCE(sum(t.value) FILTER (WHERE w.watermark >= t.last_window_end), 0)::bigint AS closed,
       array_agg(t."partition") FILTER (WHERE w.watermark IS NULL
         OR w.watermark < t.last_window_end) AS open
     FROM speed_hourly t
     JOIN speed_metrics m ON m.type = t.type AND m.aggregation <> 'count_distinct'
     LEFT JOIN speed_watermarks w ON w."partition" = t."partition"
     WHERE t.hour = $1::timestamp AND t.type = ANY($2::text[])
     GROUP BY t.type`,
    [h, speedMetrics],
  );
  const late = await tx.query<{ type: string; v: number | string }>(
    `SELECT type, COALESCE(sum(value), 0)::bigint AS v FROM speed_late_dropped
     WHERE hour = $1::timestamp AND type = ANY($2::text[]) GROUP BY type`,
    [h, speedMetrics],
  );
  const lateBy = new Map(late.map((r) => [r.type, Number(r.v)]));
  const out = new Map<string, SpeedSide>();
  for (const m of speedMetrics) {
    out.set(m, { value: 0, lateDropped: lateBy.get(m) ?? 0, final: true });
  }
  for (const r of totals) {
    const open = r.open ?? [];
    if (finalOnly && open.length) {
      out.delete(r.type);
      continue;
    }
    const value = Number(r.closed) + (open.length ? await foldOpen(tx, h, r.type, open) : 0);
    out.set(r.type, { value, lateDropped: lateBy.get(r.type) ?? 0, final: open.length === 0 });
  }
  return out;
}

/** What `bytes` shows of `type`'s hour on partitions whose newest window is still open. */
async function foldOpen(
  tx: Queryable,
  h: Date,
  type: string,
  partitions: readonly number[],
): Promise<number> {
  const rows = await tx.query<{ v: number | string }>(
    `SELECT COALESCE(sum(p.value), 0)::bigint AS v
     FROM speed_partials p
     JOIN speed_watermarks w ON w."partition" = p."partition" AND p.window_end <= w.watermark
     WHERE p.type = $1 AND p."partition" = ANY($2::int[])
       AND p."timestamp" >= $3::timestamp AND p."timestamp" < $3::timestamp + interval '1 hour'`,
    [type, [...partitions], h],
  );
  return Number(rows[0]?.v ?? 0);
}

/** A reconciled metric whose difference the speed layer's late-dropped events do not explain. */
export interface Unexplained {
  readonly metric: string;
  readonly speedMetric: string;
  readonly difference: number;
  readonly lateDropped: number;
  readonly unexplained: number;
}

/** Says that data went missing: one warning and one count per metric. */
export function reportUnexplained(
  log: Logger,
  telemetry: BatchTelemetry,
  hour: number,
  unexplained: readonly Unexplained[],
  context: Record<string, unknown> = {},
): void {
  for (const u of unexplained) {
    telemetry.unexplainedDifferences.inc({ metric: u.metric });
    log.warn("batch and speed differ by more than the late-dropped events explain", {
      hour: hourLabel(hour),
      ...context,
      metric: u.metric,
      speed_metric: u.speedMetric,
      difference: u.difference,
      late_dropped: u.lateDropped,
      unexplained: u.unexplained,
    });
  }
}

/** Hours recomputed per pass at most (oldest first); the rest wait for the next tick. */
const PENDING_HOURS_PER_PASS = 24;

/**
 * Recomputes the reconciliation rows whose speed side was not final and now
 * is, each hour in one transaction; a row that turns final with an
 * unexplained difference is reported then. Returns the hours looked at.
 */
export async function reconcilePending(
  db: Db,
  log: Logger,
  telemetry: BatchTelemetry,
): Promise<number[]> {
  const hours = (await db.query<{ hour: Date }>(
    `SELECT DISTINCT hour FROM batch_reconciliation_t WHERE NOT speed_final
     ORDER BY hour LIMIT ${PENDING_HOURS_PER_PASS}`,
  )).map((r) => r.hour.getTime());
  for (const hour of hours) {
    const found = await db.transaction((tx) => reconcileAgain(tx, hour));
    reportUnexplained(log, telemetry, hour, found, { recomputed: true });
  }
  return hours;
}

async function reconcileAgain(tx: Queryable, hour: number): Promise<Unexplained[]> {
  const rows = await tx.query<{
    metric: string;
    speed_metric: string;
    batch_value: number | string;
    unknown_dropped: number | string;
  }>(
    `SELECT metric, speed_metric, batch_value, unknown_dropped FROM batch_reconciliation_t
     WHERE hour = $1::timestamp AND NOT speed_final ORDER BY metric FOR UPDATE`,
    [sqlHour(hour)],
  );
  if (rows.length === 0) return []; // a batch run replaced them meanwhile
  // Rows still pending stay as they are: a pass reads a few rows of totals,
  // however long a partition keeps a window of the hour open.
  const speed = await readSpeedSide(tx, hour, [...new Set(rows.map((r) => r.speed_metric))], true);
  const out: Unexplained[] = [];
  for (const r of rows) {
    const side = speed.get(r.speed_metric);
    if (!side) continue;
    const c = reconcile(Number(r.batch_value), Number(r.unknown_dropped), side);
    await tx.query(
      `UPDATE batch_reconciliation_t SET speed_value = $3, difference = $4, late_dropped = $5,
         unexplained = $6, speed_final = $7, computed_at = now()
       WHERE hour = $1::timestamp AND metric = $2`,
      [
        sqlHour(hour),
        r.metric,
        c.speedValue,
        c.difference,
        c.lateDropped,
        c.unexplained,
        c.speedFinal,
      ],
    );
    if (c.unexplained === 0) continue;
    out.push({
      metric: r.metric,
      speedMetric: r.speed_metric,
      difference: c.difference,
      lateDropped: c.lateDropped,
      unexplained: c.unexplained,
    });
  }
  return out;
}
