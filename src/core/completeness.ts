/**
 * When an hour of the lake is complete: the one rule the batch scheduler, the
 * API's hour states and `/ready` apply. Pure: what PostgreSQL records about
 * each partition goes in, event times come out.
 *
 * A partition's lake is complete up to its event-time clock at its
 * lake-durable offset: every event below that offset is in the lake, and an
 * event after it that is older than that clock minus the allowed lateness is
 * late (the speed layer drops it; the batch layer picks it up when the hour
 * is re-run). A quiet partition would never move its clock, so one whose
 * whole log was found durable in the lake at wall time T counts as complete
 * up to T minus the allowed lateness. An hour H is complete when every
 * partition of the topic, including those no instance has written progress
 * for yet, is complete up to at least H + 1 h + the allowed lateness: then
 * every partition's watermark has passed the hour's end.
 */
import { HOUR_MS, hourStart } from "./window.ts";

/** What PostgreSQL records about one partition's lake (`speed_progress`). */
export interface LakeProgress {
  readonly partition: number;
  /** Event-time clock over the events below the lake-durable offset, epoch ms; -Infinity before the first. */
  readonly lakeClockMs: number;
  /**
   * Wall-clock time (epoch ms) at which the end of the partition's log was
   * read and later found durable in the lake; -Infinity if never.
   */
  readonly caughtUpMs: number;
}

/**
 * Event time up to which one partition's lake is complete.
 *
 * @example
 * partitionCompleteMs({ partition: 0, lakeClockMs: 5_000, caughtUpMs: -Infinity }, 15_000) // 5_000
 * partitionCompleteMs({ partition: 0, lakeClockMs: 5_000, caughtUpMs: 60_000 }, 15_000) // 45_000
 */
export function partitionCompleteMs(p: LakeProgress, allowedLatenessMs: number): number {
  return Math.max(p.lakeClockMs, p.caughtUpMs - allowedLatenessMs);
}

/**
 * Event time up to which the whole topic's lake is complete: the least of
 * its partitions' (`partitionCompleteMs`), -Infinity when a partition of
 * `0 … partitions - 1` has no progress or the topic's partition count is
 * unknown (0).
 */
export function topicCompleteMs(
  progress: readonly LakeProgress[],
  partitions: number,
  allowedLatenessMs: number,
): number {
  if (partitions < 1) return -Infinity;
  const byPartition = new Map(progress.map((p) => [p.partition, p]));
  let least = Infinity;
  for (let p = 0; p < partitions; p++) {
    const row = byPartition.get(p);
    if (!row) return -Infinity;
    least = Math.min(least, partitionCompleteMs(row, allowedLatenessMs));
  }
  return least;
}

/**
 * Whether hour `hourMs` is complete once the topic is complete up to `completeMs`.
 *
 * @example hourComplete(Date.UTC(2026, 10, 28, 10), Date.UTC(2026, 10, 28, 11, 0, 15), 15_000) // true
 */
export function hourComplete(hourMs: number, completeMs: number, allowedLatenessMs: number) {
  return completeMs >= hourMs + HOUR_MS + allowedLatenessMs;
}

/**
 * Start of the oldest hour that is not complete once the topic is complete
 * up to `completeMs` (every earlier hour is); undefined when nothing is
 * known (`completeMs` is -Infinity).
 */
export function oldestIncompleteHour(
  completeMs: number,
  allowedLatenessMs: number,
): number | undefined {
  if (!Number.isFinite(completeMs)) return undefined;
  return hourStart(completeMs - allowedLatenessMs);
}

/**
 * The first hour with data: the earliest of the first hour the speed layer
 * recorded lake rows in and the first hour a batch run read rows from
 * (either undefined when there is none); undefined when neither is known.
 *
 * @example firstDataHour(Date.UTC(2026, 11, 5, 14), undefined) // Date.UTC(2026, 11, 5, 14)
 */
export function firstDataHour(
  firstLakeHourMs: number | undefined,
  firstReadHourMs: number | undefined,
): number | undefined {
  if (firstLakeHourMs === undefined) return firstReadHourMs;
  if (firstReadHourMs === undefined) return firstLakeHourMs;
  return Math.min(firstLakeHourMs, firstReadHourMs);
}

/**
 * Whether hour `hourMs` is before any data: it starts before the first hour
 * with data (`firstDataHour`). Nothing known, nothing before it.
 *
 * @example beforeAnyData(Date.UTC(2026, 11, 1, 0), Date.UTC(2026, 11, 5, 14)) // true
 */
export function beforeAnyData(hourMs: number, firstDataHourMs: number | undefined): boolean {
  return firstDataHourMs !== undefined && hourMs < firstDataHourMs;
}
