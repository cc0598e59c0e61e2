/**
 * Why a backfill waits, and when waiting is pointless. Pure: what PostgreSQL
 * records about a partition goes in, a sentence or a verdict comes out.
 *
 * A backfill replays only what the lake holds durably. The speed layer
 * stores its offsets as it flushes, but its lake files are written when they
 * roll (`lake.roll.max_age` after their oldest row at the latest), so beside
 * a running pipeline the lake trails the stored offsets by up to a roll: the
 * backfill waits for it. The speed layer records the partition's progress
 * (`speed_progress.updated_at`) with every flush that moves anything,
 * including the lake's offset once a roll is durable; a partition whose lake
 * lags and whose progress has not moved for longer than a roll and a flush
 * (plus a margin for a slow write) has no running speed layer behind it:
 * its lake will not catch up until the pipeline starts again.
 */
import { formatDuration } from "../config/units.ts";

/** A partition the replay waits on. */
export interface LakeLag {
  readonly partition: number;
  /** Every event below it is durable in the lake. */
  readonly lakeOffset: number;
  /** The replay needs the lake durable up to here. */
  readonly stopOffset: number;
}

/** How fast the pipeline makes the lake durable (its plan). */
export interface LakePace {
  /** `lake.roll.max_age`. */
  readonly rollMaxAgeMs: number;
  /** `speed.flush_interval`. */
  readonly flushIntervalMs: number;
}

/** Slack over a roll and a flush before a quiet partition counts as stalled. */
export const STALL_MARGIN_MS = 30_000;

/**
 * The reason a row waits, for the log and `/api/v1/config`.
 *
 * @example
 * waitReason({ partition: 2, lakeOffset: 900, stopOffset: 1200 }, { rollMaxAgeMs: 60_000, flushIntervalMs: 1_000 })
 * // "waiting for the lake's files up to offset 1200 of partition 2 (durable up to 900): the speed layer rolls them every 1m"
 */
export function waitReason(lag: LakeLag, pace: LakePace): string {
  return `waiting for the lake's files up to offset ${lag.stopOffset} of partition ` +
    `${lag.partition} (durable up to ${lag.lakeOffset}): the speed layer rolls them every ` +
    formatDuration(pace.rollMaxAgeMs);
}

/** How long a lagging partition's progress may stand still while a pipeline runs. */
export function stallAfterMs(pace: LakePace): number {
  return pace.rollMaxAgeMs + pace.flushIntervalMs + STALL_MARGIN_MS;
}

/**
 * Whether the lake of a lagging partition will not catch up by itself: the
 * speed layer last recorded its progress `progressAgeMs` ago (undefined: it
 * never did), longer than a roll and a flush allow.
 */
export function lakeStalled(progressAgeMs: number | undefined, pace: LakePace): boolean {
  return progressAgeMs === undefined || progressAgeMs > stallAfterMs(pace);
}

/** What the CLI prints when it gives up: the stalled partition and what to do. */
export function stalledMessage(
  lag: LakeLag,
  progressAgeMs: number | undefined,
  pace: LakePace,
): string {
  const still = progressAgeMs === undefined
    ? "the speed layer has recorded no progress for it"
    : `the speed layer has recorded nothing for it for ${Math.round(progressAgeMs / 1000)}s ` +
      `(it rolls its files every ${formatDuration(pace.rollMaxAgeMs)})`;
  return `the lake is durable up to offset ${lag.lakeOffset} of partition ${lag.partition}, ` +
    `not up to ${lag.stopOffset} where the speed layer's stored offsets are, and ${still}: ` +
    "the pipeline is not running (it was stopped before its files were written); " +
    "start it, and its backfill finishes the rest";
}
