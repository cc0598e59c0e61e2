/**
 * Reading what the speed layer records (sink.ts writes it) for the other
 * layers: each partition's progress and the topic's partition count (the
 * batch layer's completeness), the speed side of an hour's reconciliation,
 * the first window and lake hour, the partitions a backfill or a plan switch
 * locks, and the deletes of a dropped metric. The SQL of the speed tables
 * lives in this folder; other folders call these functions, each on the
 * `Queryable` it is given, so their transactions stay theirs.
 */
import type { Queryable } from "../db/db.ts";

const ms = (v: unknown) => (v === null || v === undefined ? -Infinity : Number(v));

/** One partition's recorded progress. Times are epoch ms; -Infinity when unknown. */
export interface RecordedProgress {
  readonly partition: number;
  readonly nextOffset: number;
  readonly lakeOffset: number;
  readonly lakeClockMs: number;
  readonly caughtUpMs: number;
}

/** The partitions of `topic` as the speed layer recorded them (0: unknown), and each one's progress. */
export async function readTopicProgress(
  db: Queryable,
  topic: string,
): Promise<{ partitions: number; progress: RecordedProgress[] }> {
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
  return {
    partitions: topics.length ? Number(topics[0].partitions) : 0,
    progress: rows.map((r) => ({
      partition: Number(r.partition),
      nextOffset: Number(r.next_offset),
      lakeOffset: Number(r.lake_offset),
      lakeClockMs: ms(r.lake_clock_ms),
      caughtUpMs: ms(r.caught_up_ms),
    })),
  };
}

/** The partitions of `topic` with recorded progress, in order. */
export async function progressPartitions(db: Queryable, topic: string): Promise<number[]> {
  const parts = await db.query<{ partition: number }>(
    `SELECT "partition" FROM speed_progress WHERE topic = $1 ORDER BY "partition"`,
    [topic],
  );
  return parts.map((p) => Number(p.partition));
}

/**
 * Locks the progress rows of every partition of `topic` in `tx` (no flush
 * commits on them until it ends) and returns the partitions, in order.
 */
export async function lockProgressPartitions(tx: Queryable, topic: string): Promise<number[]> {
  const parts = await tx.query<{ partition: number }>(
    `SELECT "partition" FROM speed_progress WHERE topic = $1 ORDER BY "partition" FOR UPDATE`,
    [topic],
  );
  return parts.map((p) => Number(p.partition));
}

/** Locks one partition's progress row in `tx` and returns its next offset (0 when none). */
export async function lockNextOffset(
  tx: Queryable,
  topic: string,
  partition: number,
): Promise<number> {
  const progress = await tx.query<{ next_offset: number }>(
    `SELECT next_offset FROM speed_progress WHERE topic = $1 AND "partition" = $2
           FOR UPDATE`,
    [topic, partition],
  );
  return Number(progress[0]?.next_offset ?? 0);
}

/**
 * Start of the oldest window of any of `types` (undefined: none yet).
 *
 * min("timestamp") has no index to read it from (sql/006 left a BRIN index,
 * which has no order), so: take any window, then the oldest at or before it.
 * Windows arrive in time order, so the first row of the heap is among the
 * oldest and the BRIN index narrows the second query to the table's first
 * pages; the answer is exact whatever the order.
 */
export async function firstWindowStart(
  db: Queryable,
  types: readonly string[],
): Promise<number | undefined> {
  const any = await db.query<{ t: Date }>(
    `SELECT "timestamp" AS t FROM speed_partials WHERE type = ANY($1::text[]) LIMIT 1`,
    [types],
  );
  if (any.length === 0) return undefined;
  const rows = await db.query<{ t: Date | null }>(
    `SELECT min("timestamp") AS t FROM speed_partials
         WHERE type = ANY($1::text[]) AND "timestamp" <= $2::timestamp`,
    [types, any[0].t],
  );
  return rows[0]?.t?.getTime();
}

/** The first hour the speed layer stamped lake rows of `topic` in (undefined: none). */
export async function firstLakeHour(db: Queryable, topic: string): Promise<number | undefined> {
  const rows = await db.query<{ lake: Date | null }>(
    "SELECT min(hour) AS lake FROM lake_hour_changes WHERE topic = $1",
    [topic],
  );
  return rows[0]?.lake?.getTime();
}

/**
 * The join of the lake changes of the hour `hour` (a column, e.g. `"bh.hour"`)
 * as `c` (columns seq: the change number a batch run compares with the one it
 * read the lake at; pending_since: when the first unseen change was made),
 * only those after the change number `after` when given: the batch layer's
 * stale rule (src/batch/hour_state.ts) groups its hours over it.
 *
 * @example
 * lakeChangesJoinSql("bh.hour") // LEFT JOIN lake_hour_changes c ON c.hour = bh.hour
 */
export function lakeChangesJoinSql(hour: string, after?: string): string {
  return `LEFT JOIN lake_hour_changes c ON c.hour = ${hour}${after ? ` AND c.seq > ${after}` : ""}`;
}

/** Marks the lake changes of `hour` up to `lakeSeq` as seen by a batch run (in its transaction). */
export async function settleLakeChanges(
  tx: Queryable,
  hour: Date,
  lakeSeq: number,
): Promise<void> {
  await tx.query(
    `UPDATE lake_hour_changes SET pending_since = NULL
       WHERE hour = $1::timestamp AND seq <= $2 AND pending_since IS NOT NULL`,
    [hour, lakeSeq],
  );
}

/** What the speed layer says about one metric's hour. */
export interface SpeedSide {
  /** The hour's total of the windows `bytes` shows (closed on their partition). */
  readonly value: number;
  /** What the speed layer dropped as too late in that hour (the batch has it). */
  readonly lateDropped: number;
  /** Every window written into the hour is closed on its partition. */
  readonly final: boolean;
}

/**
 * The speed side of `hour` (epoch ms) for each of `speedMetrics`, read in `tx`.
 * The sum of a partition's hourly total is what `bytes` shows once the
 * partition's watermark has passed the newest window written into the hour;
 * only the partitions with a window still open fold their partials as
 * `bytes` does.
 */
export async function readSpeedSide(
  tx: Queryable,
  hour: number,
  speedMetrics: readonly string[],
  /** Leave out metrics whose speed side is not final (and never fold partials). */
  finalOnly = false,
): Promise<Map<string, SpeedSide>> {
  const h = new Date(hour);
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

/** Whether the speed layer ever declared a metric named `name`. */
export async function speedMetricKnown(db: Queryable, name: string): Promise<boolean> {
  const rows = await db.query("SELECT 1 FROM speed_metrics WHERE type = $1", [name]);
  return rows.length > 0;
}

/**
 * Deletes a dropped metric's late-dropped values and declaration in `tx`
 * (its windows: sink.ts's deleteMetricRows); rows deleted per table.
 */
export async function dropSpeedMetric(
  tx: Queryable,
  name: string,
): Promise<{ speed_late_dropped: number; speed_metrics: number }> {
  return {
    speed_late_dropped: await countDeleted(
      tx,
      "DELETE FROM speed_late_dropped WHERE type = $1",
      name,
    ),
    speed_metrics: await countDeleted(tx, "DELETE FROM speed_metrics WHERE type = $1", name),
  };
}

async function countDeleted(tx: Queryable, sql: string, name: string): Promise<number> {
  const rows = await tx.query<{ n: number }>(
    `WITH d AS (${sql} RETURNING 1) SELECT count(*)::int AS n FROM d`,
    [name],
  );
  return Number(rows[0]?.n ?? 0);
}
