/**
 * The backfill's PostgreSQL side (sql/010_backfill.sql): the metric
 * definitions a pipeline last applied, the partitions whose windows are being
 * recomputed and how far, the batch hours to run again. Each chunk of a
 * replay is written with its progress in one transaction, after checking the
 * row is still this worker's and still where the worker thinks it is, so two
 * workers (or a superseding switch) never write the same events twice.
 */
import type { Queryable } from "../db/db.ts";
import type { MetricPlan } from "../config/plan.ts";
import { HOUR_MS } from "../core/window.ts";
import { intArray } from "../speed/mod.ts";

export type Layer = "speed" | "batch";

/** A recorded definition (hash undefined: adopted from before migration 010). */
export interface RecordedDefinition {
  readonly layer: Layer;
  readonly name: string;
  readonly hash?: string;
}

export async function readDefinitions(db: Queryable, topic: string): Promise<RecordedDefinition[]> {
  const rows = await db.query<{ layer: Layer; name: string; hash: string | null }>(
    "SELECT layer, name, hash FROM metric_definitions WHERE topic = $1 ORDER BY layer, name",
    [topic],
  );
  return rows.map((r) => ({ layer: r.layer, name: r.name, ...(r.hash ? { hash: r.hash } : {}) }));
}

/** Replaces the recorded definitions of `layer` with `defs`. */
export async function writeDefinitions(
  tx: Queryable,
  topic: string,
  layer: Layer,
  defs: readonly { name: string; hash: string; definition: string }[],
): Promise<void> {
  await tx.query(
    "DELETE FROM metric_definitions WHERE topic = $1 AND layer = $2 AND NOT (name = ANY($3::text[]))",
    [topic, layer, defs.map((d) => d.name)],
  );
  if (defs.length === 0) return;
  await tx.query(
    `INSERT INTO metric_definitions (topic, layer, name, hash, definition, updated_at)
     SELECT $1, $2, u.n, u.h, u.d, now() FROM unnest($3::text[], $4::text[], $5::text[]) AS u(n, h, d)
     ON CONFLICT (topic, layer, name) DO UPDATE SET hash = EXCLUDED.hash,
       definition = EXCLUDED.definition,
       updated_at = CASE WHEN metric_definitions.hash IS DISTINCT FROM EXCLUDED.hash
         THEN now() ELSE metric_definitions.updated_at END`,
    [topic, layer, defs.map((d) => d.name), defs.map((d) => d.hash), defs.map((d) => d.definition)],
  );
}

/** One partition of one metric to recompute, as stored. */
export interface BackfillRow {
  readonly topic: string;
  readonly metric: string;
  readonly partition: number;
  readonly hash: string;
  /** The metric's plan, replayed. */
  readonly definition: MetricPlan;
  readonly reason: "added" | "changed" | "manual";
  readonly stopOffset: number;
  readonly fromMs: number;
  readonly untilMs: number;
  /** Undefined: not started. */
  readonly nextOffset?: number;
  readonly clockMs: number;
  readonly startOffset?: number;
  readonly events: number;
  readonly rowsWritten: number;
  readonly generation?: number;
  readonly createdAt: number;
  readonly finishedAt?: number;
  readonly holder?: string;
}

interface RawRow {
  topic: string;
  metric: string;
  partition: number;
  hash: string;
  definition: string;
  reason: BackfillRow["reason"];
  stop_offset: number;
  from_ms: number | null;
  until_ms: number | null;
  next_offset: number | null;
  clock_ms: number | null;
  start_offset: number | null;
  events: number;
  rows_written: number;
  generation: number | null;
  created_at: Date;
  finished_at: Date | null;
  holder: string | null;
}

const COLUMNS = `topic, metric, "partition", hash, definition, reason, stop_offset, from_ms,
  until_ms, next_offset, clock_ms, start_offset, events, rows_written, generation, created_at,
  finished_at, holder`;

function toRow(r: RawRow): BackfillRow {
  const n = (v: number | null) => (v === null ? undefined : Number(v));
  return {
    topic: r.topic,
    metric: r.metric,
    partition: Number(r.partition),
    hash: r.hash,
    definition: JSON.parse(r.definition) as MetricPlan,
    reason: r.reason,
    stopOffset: Number(r.stop_offset),
    fromMs: n(r.from_ms) ?? -Infinity,
    untilMs: n(r.until_ms) ?? Infinity,
    ...(r.next_offset !== null ? { nextOffset: Number(r.next_offset) } : {}),
    clockMs: n(r.clock_ms) ?? -Infinity,
    ...(r.start_offset !== null ? { startOffset: Number(r.start_offset) } : {}),
    events: Number(r.events),
    rowsWritten: Number(r.rows_written),
    ...(r.generation !== null ? { generation: Number(r.generation) } : {}),
    createdAt: r.created_at.getTime(),
    ...(r.finished_at ? { finishedAt: r.finished_at.getTime() } : {}),
    ...(r.holder ? { holder: r.holder } : {}),
  };
}

const finite = (v: number) => (Number.isFinite(v) ? v : null);

/** The stored row of (metric, partition), locked for the transaction. */
export async function lockRow(
  tx: Queryable,
  topic: string,
  metric: string,
  partition: number,
): Promise<BackfillRow | undefined> {
  const rows = await tx.query<RawRow>(
    `SELECT ${COLUMNS} FROM backfill_partitions
     WHERE topic = $1 AND metric = $2 AND "partition" = $3 FOR UPDATE`,
    [topic, metric, partition],
  );
  return rows[0] && toRow(rows[0]);
}

export interface NewRow {
  readonly topic: string;
  readonly metric: MetricPlan;
  readonly partition: number;
  readonly hash: string;
  readonly reason: BackfillRow["reason"];
  readonly stopOffset: number;
  readonly fromMs: number;
  readonly untilMs: number;
  readonly generation?: number;
  /** Claimed at once by this holder (the CLI), with this lease. */
  readonly holder?: string;
  readonly leaseMs?: number;
}

/** Starts (or restarts from scratch) the recomputation of (metric, partition). */
export async function putRow(tx: Queryable, r: NewRow): Promise<void> {
  await tx.query(
    `INSERT INTO backfill_partitions AS b (topic, metric, "partition", hash, definition, reason,
       stop_offset, from_ms, until_ms, generation, holder, lease_until, finished_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
       CASE WHEN $11::text IS NULL THEN NULL
         ELSE now() + $12::bigint * interval '1 millisecond' END,
       CASE WHEN $7::bigint <= 0 THEN now() END)
     ON CONFLICT (topic, metric, "partition") DO UPDATE SET hash = EXCLUDED.hash,
       definition = EXCLUDED.definition, reason = EXCLUDED.reason,
       stop_offset = EXCLUDED.stop_offset, from_ms = EXCLUDED.from_ms,
       until_ms = EXCLUDED.until_ms, next_offset = NULL, clock_ms = NULL, start_offset = NULL,
       events = 0, rows_written = 0, generation = EXCLUDED.generation, created_at = now(),
       finished_at = EXCLUDED.finished_at, holder = EXCLUDED.holder,
       lease_until = EXCLUDED.lease_until`,
    [
      r.topic,
      r.metric.name,
      r.partition,
      r.hash,
      JSON.stringify(r.metric),
      r.reason,
      r.stopOffset,
      finite(r.fromMs),
      finite(r.untilMs),
      r.generation ?? null,
      r.holder ?? null,
      r.leaseMs ?? 0,
    ],
  );
}

/** Stops recomputing `metric` in `partition` (it was removed): its row goes, its rows stay. */
export async function deleteRow(
  tx: Queryable,
  topic: string,
  metric: string,
  partition?: number,
): Promise<void> {
  await tx.query(
    `DELETE FROM backfill_partitions WHERE topic = $1 AND metric = $2
     AND ($3::int IS NULL OR "partition" = $3)`,
    [topic, metric, partition ?? null],
  );
}

/**
 * Claims one unfinished row for `holder`: free, its own, its lease passed,
 * or held by a process known to be gone. Oldest first.
 */
export async function claimRow(
  db: Queryable,
  topic: string,
  holder: string,
  leaseMs: number,
  gone: readonly string[],
  metrics?: readonly string[],
  /** `metric/partition` of rows not to claim. */
  skip: readonly string[] = [],
): Promise<BackfillRow | undefined> {
  const rows = await db.query<RawRow>(
    `UPDATE backfill_partitions AS b SET holder = $2,
       lease_until = now() + $3::bigint * interval '1 millisecond'
     WHERE (b.topic, b.metric, b."partition") IN (
       SELECT topic, metric, "partition" FROM backfill_partitions
       WHERE topic = $1 AND finished_at IS NULL
         AND (holder IS NULL OR holder = $2 OR lease_until < now() OR holder = ANY($4::text[]))
         AND ($5::text[] IS NULL OR metric = ANY($5::text[]))
         AND NOT ((metric || '/' || "partition") = ANY($6::text[]))
       ORDER BY created_at, metric, "partition" LIMIT 1 FOR UPDATE SKIP LOCKED)
     RETURNING ${COLUMNS.split(",").map((c) => `b.${c.trim()}`).join(", ")}`,
    [topic, holder, leaseMs, [...gone], metrics ? [...metrics] : null, [...skip]],
  );
  return rows[0] && toRow(rows[0]);
}

/** Holders of unfinished rows (to tell which processes are gone). */
export async function holders(db: Queryable, topic: string): Promise<string[]> {
  const rows = await db.query<{ holder: string }>(
    `SELECT DISTINCT holder FROM backfill_partitions
     WHERE topic = $1 AND finished_at IS NULL AND holder IS NOT NULL`,
    [topic],
  );
  return rows.map((r) => r.holder);
}

/** Gives a claimed row back (the CLI stops before it is done). */
export async function releaseRow(db: Queryable, row: BackfillRow, holder: string): Promise<void> {
  await db.query(
    `UPDATE backfill_partitions SET holder = NULL, lease_until = NULL
     WHERE topic = $1 AND metric = $2 AND "partition" = $3 AND holder = $4`,
    [row.topic, row.metric, row.partition, holder],
  );
}

/** Where a claimed row stands as the worker sees it. */
export interface Position {
  readonly nextOffset?: number;
  readonly hash: string;
}

/** Thrown inside a chunk's transaction when the row is no longer where the worker left it. */
export class RowMovedError extends Error {
  override name = "RowMovedError";
}

/**
 * Checks, inside a chunk's transaction, that the row is still this worker's
 * and at `expected`; throws `RowMovedError` otherwise (the transaction rolls
 * back and the worker drops the row).
 */
export async function checkPosition(
  tx: Queryable,
  row: BackfillRow,
  holder: string,
  expected: Position,
): Promise<void> {
  const now = await lockRow(tx, row.topic, row.metric, row.partition);
  if (
    !now || now.hash !== expected.hash || now.holder !== holder ||
    now.nextOffset !== expected.nextOffset || now.finishedAt !== undefined
  ) {
    throw new RowMovedError(
      `backfill of ${row.metric} in partition ${row.partition} was superseded or taken over`,
    );
  }
}

/** Records a chunk's progress (in the chunk's transaction) and renews the lease. */
export async function advance(
  tx: Queryable,
  row: BackfillRow,
  p: {
    nextOffset: number;
    clockMs: number;
    startOffset: number;
    events: number;
    rows: number;
    leaseMs: number;
    finished: boolean;
  },
): Promise<void> {
  await tx.query(
    `UPDATE backfill_partitions SET next_offset = $4, clock_ms = $5,
       start_offset = COALESCE(start_offset, $6), events = events + $7,
       rows_written = rows_written + $8,
       lease_until = now() + $9::bigint * interval '1 millisecond',
       finished_at = CASE WHEN $10 THEN now() END,
       holder = CASE WHEN $10 THEN NULL ELSE holder END
     WHERE topic = $1 AND metric = $2 AND "partition" = $3`,
    [
      row.topic,
      row.metric,
      row.partition,
      p.nextOffset,
      finite(p.clockMs),
      p.startOffset,
      p.events,
      p.rows,
      p.leaseMs,
      p.finished,
    ],
  );
}

/** Every row of the topic (newest first), for status. */
export async function listRows(db: Queryable, topic: string): Promise<BackfillRow[]> {
  const rows = await db.query<RawRow>(
    `SELECT ${COLUMNS} FROM backfill_partitions WHERE topic = $1
     ORDER BY created_at DESC, metric, "partition"`,
    [topic],
  );
  return rows.map(toRow);
}

/** Whether any row of the topic is unfinished. */
export async function hasOpenRows(db: Queryable, topic: string): Promise<boolean> {
  const rows = await db.query(
    "SELECT 1 FROM backfill_partitions WHERE topic = $1 AND finished_at IS NULL LIMIT 1",
    [topic],
  );
  return rows.length > 0;
}

// ---- batch hours -------------------------------------------------------------

/** Hours the batch layer completed, at or after `fromMs`. */
export async function batchedHours(db: Queryable, fromMs: number): Promise<number[]> {
  const rows = await db.query<{ hour: Date }>(
    "SELECT hour FROM batch_hours WHERE ($1::timestamp IS NULL OR hour >= $1::timestamp) ORDER BY hour",
    [Number.isFinite(fromMs) ? new Date(fromMs) : null],
  );
  return rows.map((r) => r.hour.getTime());
}

/** Queues hours to run again (an hour queued already keeps its place and gains the metrics). */
export async function queueHours(
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
export async function nextHour(db: Queryable, topic: string): Promise<number | undefined> {
  const rows = await db.query<{ hour: Date }>(
    `SELECT hour FROM backfill_hours WHERE topic = $1 AND finished_at IS NULL
     ORDER BY hour LIMIT 1`,
    [topic],
  );
  return rows[0]?.hour.getTime();
}

export async function finishHour(
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
export async function hourCounts(
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

/** Keeps `hours` (starts) within the last `backfillHours` hours before `nowMs`. */
export function withinHours(hours: readonly number[], nowMs: number, backfillHours?: number) {
  if (backfillHours === undefined) return [...hours];
  const from = Math.floor(nowMs / HOUR_MS) * HOUR_MS - backfillHours * HOUR_MS;
  return backfillHours === 0 ? [] : hours.filter((h) => h >= from);
}
