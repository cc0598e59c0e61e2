/**
 * What the batch layer knows about each hour, read from what the speed layer
 * and earlier runs recorded in PostgreSQL: how complete the lake is (per
 * partition, and as the topic's least, see src/core/completeness.ts), which
 * hours are batched, which batched hours the lake has changed since or a
 * backfill's re-run failed for (stale), and which hours come before any data
 * (empty). The scheduler decides from it; the API and `/ready` show it.
 */
import type { Plan } from "../config/plan.ts";
import type { Queryable } from "../db/db.ts";
import {
  beforeAnyData,
  firstDataHour,
  hourComplete,
  type LakeProgress,
  oldestIncompleteHour,
  partitionCompleteMs,
  topicCompleteMs,
} from "../core/completeness.ts";
import { HOUR_MS } from "../core/window.ts";
import { sqlHour } from "./hours.ts";

/** One partition's recorded progress. Times are epoch ms; -Infinity when unknown. */
export interface PartitionCompleteness extends LakeProgress {
  readonly nextOffset: number;
  readonly lakeOffset: number;
  /** Event time up to which this partition's lake is complete. */
  readonly completeMs: number;
}

/** The lake's completeness for the source topic. */
export interface Completeness {
  readonly topic: string;
  /** Partitions of the topic as the speed layer recorded them (0: unknown). */
  readonly partitions: number;
  readonly perPartition: readonly PartitionCompleteness[];
  /** Event time up to which every partition is complete (-Infinity: not known for all). */
  readonly completeMs: number;
  /** Start of the oldest hour that is not complete (undefined when nothing is known). */
  readonly oldestIncompleteHour?: number;
}

const ms = (v: unknown) => (v === null || v === undefined ? -Infinity : Number(v));

/** Reads the completeness of `plan`'s source topic. */
export async function readCompleteness(db: Queryable, plan: Plan): Promise<Completeness> {
  const topic = plan.source.kafka.topic;
  const lateness = plan.speed.allowedLatenessMs;
  const [topics, rows] = await Promise.all([
    db.query<{ partitions: number }>("SELECT partitions FROM speed_topics WHERE topic = $1", [
      topic,
    ]),
    db.query<{
      partition: number;
      next_offset: number;
      lake_offset: number;
      lake_clock_ms: number | null;
      caught_up_ms: number | null;
    }>(
      `SELECT "partition", next_offset, lake_offset, lake_clock_ms, caught_up_ms
       FROM speed_progress WHERE topic = $1 ORDER BY "partition"`,
      [topic],
    ),
  ]);
  const partitions = topics.length ? Number(topics[0].partitions) : 0;
  const perPartition = rows.map((r) => {
    const p = {
      partition: Number(r.partition),
      nextOffset: Number(r.next_offset),
      lakeOffset: Number(r.lake_offset),
      lakeClockMs: ms(r.lake_clock_ms),
      caughtUpMs: ms(r.caught_up_ms),
    };
    return { ...p, completeMs: partitionCompleteMs(p, lateness) };
  });
  const completeMs = topicCompleteMs(perPartition, partitions, lateness);
  return {
    topic,
    partitions,
    perPartition,
    completeMs,
    oldestIncompleteHour: oldestIncompleteHour(completeMs, lateness),
  };
}

/** A batched hour as recorded, with whether the lake changed after its run read it. */
export interface BatchedHour {
  readonly hour: number;
  readonly lastRunId: string;
  readonly completedAt: number;
  readonly stale: boolean;
  /** The first lake change its batch has not seen (stale hours only). */
  readonly staleSince?: number;
}

// An hour is stale when the lake changed after its batch read it, or when a
// re-run a backfill started for new or changed batch metrics failed after
// its last success (backfill_hours, src/backfill/batch_hours.ts): its batch
// lacks those metrics until a run succeeds, so the scheduler runs it again
// like any stale hour, and retries it like any failed run.
const REDO_JOIN = `LEFT JOIN backfill_hours f ON f.hour = bh.hour
    AND f.status <> 'succeeded' AND f.finished_at > bh.completed_at`;

const BATCHED_SQL = `SELECT bh.hour, bh.last_run_id, bh.completed_at,
    LEAST(min(c.pending_since) FILTER (WHERE c.seq > COALESCE(bh.lake_seq, 0)),
      min(f.finished_at)) AS stale_since,
    bool_or(c.seq > COALESCE(bh.lake_seq, 0)) OR bool_or(f.hour IS NOT NULL) AS stale
  FROM batch_hours bh
  LEFT JOIN lake_hour_changes c ON c.hour = bh.hour
  ${REDO_JOIN}
  WHERE ($1::timestamp IS NULL OR bh.hour >= $1::timestamp)
    AND ($2::timestamp IS NULL OR bh.hour <= $2::timestamp)
  GROUP BY bh.hour, bh.last_run_id, bh.completed_at
  ORDER BY bh.hour`;

const STALE_SQL = `SELECT bh.hour, bh.last_run_id, bh.completed_at,
    LEAST(min(c.pending_since), min(f.finished_at)) AS stale_since, true AS stale
  FROM batch_hours bh
  LEFT JOIN lake_hour_changes c ON c.hour = bh.hour AND c.seq > COALESCE(bh.lake_seq, 0)
  ${REDO_JOIN}
  WHERE c.hour IS NOT NULL OR f.hour IS NOT NULL
  GROUP BY bh.hour, bh.last_run_id, bh.completed_at
  ORDER BY bh.hour`;

type BatchedRow = {
  hour: Date;
  last_run_id: number | string;
  completed_at: Date;
  stale_since: Date | null;
  stale: boolean | null;
};

function toBatched(r: BatchedRow): BatchedHour {
  return {
    hour: r.hour.getTime(),
    lastRunId: String(r.last_run_id),
    completedAt: r.completed_at.getTime(),
    stale: r.stale === true,
    staleSince: r.stale_since?.getTime() ?? (r.stale ? r.completed_at.getTime() : undefined),
  };
}

/** Batched hours in [from, to] (both optional), oldest first. */
export async function readBatchedHours(
  db: Queryable,
  from?: number,
  to?: number,
): Promise<BatchedHour[]> {
  const rows = await db.query<BatchedRow>(BATCHED_SQL, [
    from === undefined ? null : sqlHour(from),
    to === undefined ? null : sqlHour(to),
  ]);
  return rows.map(toBatched);
}

/** Every stale hour, whatever its age, oldest first. */
export async function readStaleHours(db: Queryable): Promise<BatchedHour[]> {
  return (await db.query<BatchedRow>(STALE_SQL)).map(toBatched);
}

/** What an hour is to the batch layer (`empty`: before any data, nothing to batch). */
export type HourState = "empty" | "incomplete" | "complete" | "batched" | "stale";

/**
 * The state of one hour. With the speed layer off (`completeMs` undefined)
 * the wall-clock rule stands in for completeness: an hour is complete once
 * it has ended plus the grace. Under the completeness rule, an hour before
 * the first hour with data (`firstDataHour`) is empty, whatever else.
 */
export function hourState(
  hourMs: number,
  batched: BatchedHour | undefined,
  when: {
    completeMs?: number;
    allowedLatenessMs: number;
    nowMs: number;
    graceMs: number;
    firstDataHour?: number;
  },
): HourState {
  if (beforeAnyData(hourMs, when.firstDataHour)) return "empty";
  if (batched) return batched.stale ? "stale" : "batched";
  const complete = when.completeMs === undefined
    ? hourMs + HOUR_MS + when.graceMs <= when.nowMs
    : hourComplete(hourMs, when.completeMs, when.allowedLatenessMs);
  return complete ? "complete" : "incomplete";
}

/** What decides when an hour may be batched. */
export type BatchRule = "completeness" | "wall_clock";

/**
 * The rule, and the completeness when it applies: hours wait for the lake to
 * be complete when this pipeline's speed layer writes the lake, that is when
 * it runs in this process or has recorded the topic in this database (a
 * speed-only process beside a batch-only one); otherwise (the lake is written
 * by someone else) the wall clock alone decides.
 */
export async function readRule(
  db: Queryable,
  plan: Plan,
): Promise<{ rule: BatchRule; completeness?: Completeness; firstDataHour?: number }> {
  const completeness = await readCompleteness(db, plan);
  if (!plan.speed.enabled && completeness.partitions === 0) return { rule: "wall_clock" };
  return { rule: "completeness", completeness, firstDataHour: await readFirstDataHour(db, plan) };
}

/**
 * The first hour with data (src/core/completeness.ts), when this pipeline's
 * speed layer writes the lake: the first hour it stamped lake rows in, or an
 * earlier one a batch read rows from (a lake older than its change records).
 */
export async function readFirstDataHour(db: Queryable, plan: Plan): Promise<number | undefined> {
  const rows = await db.query<{ lake: Date | null; read: Date | null }>(
    `SELECT (SELECT min(hour) FROM lake_hour_changes WHERE topic = $1) AS lake,
       (SELECT min(hour) FROM batch_runs WHERE status = 'succeeded' AND rows_read > 0) AS read`,
    [plan.source.kafka.topic],
  );
  return firstDataHour(rows[0]?.lake?.getTime(), rows[0]?.read?.getTime());
}

/** Draws the lake change number a run reads the lake at (before it reads). */
export async function drawLakeSeq(db: Queryable): Promise<number> {
  const rows = await db.query<{ seq: number | string }>(
    "SELECT nextval('lake_change_seq') AS seq",
  );
  return Number(rows[0].seq);
}
