/**
 * Reconciliation of an hour's batch totals with the speed layer's: the rule
 * (pure, `reconcile`), the speed side as `bytes` shows it (read by the
 * speed layer's `readSpeedSide` from its hourly totals, sql/012_speed_hourly.sql), and the
 * recomputation of rows computed before every speed window of their hour was
 * closed. A difference counts as unexplained (data went missing) only once
 * the speed side is final: the last windows of an idle-ending stream close
 * at the idle timeout, possibly after the hour was batched.
 */
import type { Db, Queryable } from "../db/db.ts";
import { readSpeedSide, type SpeedSide } from "../speed/mod.ts";
import type { Logger } from "../log.ts";
import { hourLabel, sqlHour } from "./hours.ts";
import type { BatchTelemetry } from "./telemetry.ts";

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
