/**
 * The speed layer's PostgreSQL side: one transaction per flush writes the
 * window deltas of every flushed partition (merged into partial rows with the
 * metric's combine rule), count_distinct members, dead letters and each
 * partition's next offset and clock, so the rows and the offset they account
 * for commit together or not at all. Bulk statements over arrays (`unnest`),
 * one per kind of row, whatever the number of rows.
 *
 * Rows known to be new (see written_rows.ts) go in one plain INSERT, the others
 * in an upsert per combine rule, both sorted in primary-key order so the
 * B-tree is walked once: on the local stack sorting made the upsert faster and
 * a plain INSERT faster still. COPY into a staging table then one merge was no
 * faster than `unnest` and PGlite has no COPY, so arrays it is. Figures:
 * BENCHMARKS.md, "Measurements behind the code".
 */
import { Buffer } from "node:buffer";
import type { Aggregation, SpeedPlan } from "../config/plan.ts";
import { combineSql, isAdditive } from "../core/aggregate.ts";
import { HOUR_MS, hourStart } from "../core/window.ts";
import type { DroppedValue, WindowDelta } from "../core/partition_windows.ts";
import type { Db, Queryable } from "../db/db.ts";
import type { DeadLetter } from "./source.ts";
import type { ParticipantWrite } from "./participant.ts";

/** What one partition contributes to a flush. */
export interface PartitionFlush {
  readonly partition: number;
  /** Rows merged into what PostgreSQL may hold (upserted). */
  readonly deltas: readonly WindowDelta[];
  /** Rows PostgreSQL cannot hold yet (inserted); count_distinct members never are. */
  readonly inserts?: readonly WindowDelta[];
  readonly letters: readonly DeadLetter[];
  /** Every offset below it is accounted for once this flush commits. */
  readonly nextOffset: number;
  /** Every valid event below it is durable in the lake. */
  readonly lakeOffset: number;
  /** Event-time clock, epoch ms (-Infinity before the first event). */
  readonly clockMs: number;
  readonly watermarkMs: number;
  /** Event-time clock over the events below `lakeOffset` (-Infinity: none). */
  readonly lakeClockMs?: number;
  /** Wall time the whole log was found durable in the lake (-Infinity: never). */
  readonly caughtUpMs?: number;
  /** Hours that got lake rows below `lakeOffset` since the last flush: stamped as changed. */
  readonly lakeHours?: readonly number[];
  /** What late-dropped events of additive metrics added up to, per metric and hour. */
  readonly dropped?: readonly DroppedValue[];
  /** Writes of flush participants (participant.ts), in this partition's transaction. */
  readonly writes?: readonly ParticipantWrite[];
}

/** What `speed_progress` says about a partition. */
export interface Progress {
  readonly nextOffset: number;
  readonly lakeOffset: number;
  readonly clockMs: number;
  /** -Infinity when unknown. */
  readonly lakeClockMs: number;
  readonly caughtUpMs: number;
  /** How long ago (database clock) the speed layer last recorded it, ms. */
  readonly ageMs?: number;
}

/** SQL of epoch ms → TIMESTAMP (UTC wall clock), without going through floats or strings. */
export const TS = (expr: string): string =>
  `(TIMESTAMP 'epoch' + (${expr}) * INTERVAL '1 millisecond')`;

const INSERT_SQL =
  `INSERT INTO speed_partials AS target (type, "timestamp", id, "partition", value, window_end)
   SELECT u.t, ${TS("u.s")}, u.i, u.p, u.v, ${TS("u.s + $6::bigint")}
   FROM unnest($1::text[], $2::bigint[], $3::text[], $4::int[], $5::bigint[]) AS u(t, s, i, p, v)`;

const upsertSql = (combine: string) =>
  `${INSERT_SQL}
   ON CONFLICT (type, id, "timestamp", "partition") DO UPDATE SET value = ${combine}`;

/** SQLSTATE of a unique violation: a row taken for new was already stored. */
const UNIQUE_VIOLATION = "23505";

const DISTINCT_SQL =
  `INSERT INTO speed_distinct (type, "timestamp", id, "partition", member, window_end)
   SELECT u.t, ${TS("u.s")}, u.i, u.p, u.m, ${TS("u.s + $6::bigint")}
   FROM unnest($1::text[], $2::bigint[], $3::text[], $4::int[], $5::text[]) AS u(t, s, i, p, m)
   ON CONFLICT DO NOTHING`;

const LETTERS_SQL =
  `INSERT INTO dead_letters (topic, "partition", "offset", reason, detail, payload)
   SELECT $1, u.p, u.o, u.r, u.d, decode(u.b, 'base64')
   FROM unnest($2::int[], $3::bigint[], $4::text[], $5::text[], $6::text[]) AS u(p, o, r, d, b)
   ON CONFLICT DO NOTHING`;

// The lake's completeness only moves forward (a former owner's late write
// must not take it back): GREATEST with what is stored.
const PROGRESS_SQL = `INSERT INTO speed_progress AS target
     (topic, "partition", next_offset, lake_offset, clock_ms, watermark, lake_clock_ms,
      caught_up_ms, updated_at)
   SELECT $1, u.p, u.n, u.l, u.c, ${TS("u.w")}, u.lc, u.cu, now()
   FROM unnest($2::int[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[],
     $7::bigint[], $8::bigint[]) AS u(p, n, l, c, w, lc, cu)
   ON CONFLICT (topic, "partition") DO UPDATE SET next_offset = EXCLUDED.next_offset,
     lake_offset = EXCLUDED.lake_offset,
     clock_ms = EXCLUDED.clock_ms, watermark = EXCLUDED.watermark,
     lake_clock_ms = GREATEST(target.lake_clock_ms, EXCLUDED.lake_clock_ms),
     caught_up_ms = GREATEST(target.caught_up_ms, EXCLUDED.caught_up_ms), updated_at = now()
   WHERE target.next_offset <= EXCLUDED.next_offset`;

// One row per hour and partition, so concurrent partition transactions never
// wait on each other; the sequence orders changes against batch runs
// (sql/007_complete_hours.sql).
const LAKE_HOURS_SQL = `INSERT INTO lake_hour_changes AS c
     (hour, topic, "partition", seq, changed_at, pending_since)
   SELECT ${TS("u.h")}, $1, u.p, nextval('lake_change_seq'), now(), now()
   FROM unnest($2::bigint[], $3::int[]) AS u(h, p)
   ON CONFLICT (hour, topic, "partition") DO UPDATE SET seq = EXCLUDED.seq,
     changed_at = EXCLUDED.changed_at,
     pending_since = COALESCE(c.pending_since, EXCLUDED.pending_since)`;

// Hourly totals of additive metrics move by the same deltas as their partials
// (sql/012_speed_hourly.sql): one row per (metric, hour, partition), so
// concurrent partition transactions never wait on each other.
const HOURLY_SQL = `INSERT INTO speed_hourly AS h (type, hour, "partition", value, last_window_end)
   SELECT u.t, ${TS("u.h")}, u.p, u.v, ${TS("u.e")}
   FROM unnest($1::text[], $2::bigint[], $3::int[], $4::bigint[], $5::bigint[]) AS u(t, h, p, v, e)
   ON CONFLICT (type, hour, "partition") DO UPDATE SET value = h.value + EXCLUDED.value,
     last_window_end = GREATEST(h.last_window_end, EXCLUDED.last_window_end)`;

const DROPPED_SQL =
  `INSERT INTO speed_late_dropped AS d (type, hour, topic, "partition", value, events)
   SELECT u.t, ${TS("u.h")}, $1, u.p, u.v, u.e
   FROM unnest($2::text[], $3::bigint[], $4::int[], $5::bigint[], $6::bigint[]) AS u(t, h, p, v, e)
   ON CONFLICT (type, hour, topic, "partition") DO UPDATE SET value = d.value + EXCLUDED.value,
     events = d.events + EXCLUDED.events`;

// Array parameters go as PostgreSQL array literals built here: postgres.js
// serialises a JS array element by element, which cost more than the whole
// upsert (BENCHMARKS.md, "Measurements behind the code"). Every text element
// is quoted, so any content is safe.
const quote = (v: string) =>
  '"' + (v.includes("\\") || v.includes('"') ? v.replace(/[\\"]/g, "\\$&") : v) + '"';

/** A text[] literal; null elements stay NULL. */
export function textArray(values: readonly (string | null)[]): string {
  // Common case (ids, metric names): nothing to escape, one join.
  let plain = values.length > 0;
  for (let i = 0; plain && i < values.length; i++) {
    const v = values[i];
    plain = v !== null && !v.includes("\\") && !v.includes('"');
  }
  if (plain) return '{"' + values.join('","') + '"}';
  let out = "{";
  for (let i = 0; i < values.length; i++) {
    if (i) out += ",";
    const v = values[i];
    out += v === null ? "NULL" : quote(v);
  }
  return out + "}";
}

/** An int[]/bigint[] literal of finite integers; null elements stay NULL. */
export function intArray(values: readonly (number | null)[]): string {
  return "{" + values.map((v) => (v === null ? "NULL" : String(v))).join(",") + "}";
}

/** Records how many partitions `topic` has (completeness needs every one of them). */
export async function recordTopic(db: Queryable, topic: string, partitions: number): Promise<void> {
  await db.query(
    `INSERT INTO speed_topics (topic, partitions, updated_at) VALUES ($1, $2, now())
     ON CONFLICT (topic) DO UPDATE SET partitions = EXCLUDED.partitions, updated_at = now()
     WHERE speed_topics.partitions <> EXCLUDED.partitions`,
    [topic, partitions],
  );
}

/**
 * Declares the plan's speed metrics, so the `bytes` view knows how to combine
 * them and `bytes_live` when a window takes no more late events.
 */
export async function upsertMetrics(db: Queryable, speed: SpeedPlan): Promise<void> {
  if (speed.metrics.length === 0) return;
  await db.query(
    `INSERT INTO speed_metrics (type, aggregation, window_ms, allowed_lateness_ms)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
     ON CONFLICT (type) DO UPDATE SET aggregation = EXCLUDED.aggregation,
       window_ms = EXCLUDED.window_ms, allowed_lateness_ms = EXCLUDED.allowed_lateness_ms`,
    [
      speed.metrics.map((m) => m.name),
      speed.metrics.map((m) => m.aggregation),
      speed.metrics.map(() => speed.windowMs),
      speed.metrics.map(() => speed.allowedLatenessMs),
    ],
  );
}

/** The stored progress of `partitions` of `topic` (absent when never flushed). */
export async function readProgress(
  db: Queryable,
  topic: string,
  partitions: readonly number[],
): Promise<Map<number, Progress>> {
  const rows = await db.query<{
    partition: number;
    next_offset: number;
    lake_offset: number;
    clock_ms: number | null;
    lake_clock_ms: number | null;
    caught_up_ms: number | null;
    age_ms: number | string | null;
  }>(
    `SELECT "partition", next_offset, lake_offset, clock_ms, lake_clock_ms, caught_up_ms,
       (EXTRACT(EPOCH FROM (now() - updated_at)) * 1000)::bigint AS age_ms
     FROM speed_progress WHERE topic = $1 AND "partition" = ANY($2::int[])`,
    [topic, [...partitions]],
  );
  const ms = (v: number | null) => (v === null ? -Infinity : Number(v));
  return new Map(rows.map((r) => [Number(r.partition), {
    nextOffset: Number(r.next_offset),
    lakeOffset: Number(r.lake_offset),
    clockMs: ms(r.clock_ms),
    lakeClockMs: ms(r.lake_clock_ms),
    caughtUpMs: ms(r.caught_up_ms),
    ...(r.age_ms === null ? {} : { ageMs: Number(r.age_ms) }),
  }]));
}

/** The aggregation of each metric, by name. */
export type Aggregations = ReadonlyMap<string, Aggregation>;

type Cols = [string[], number[], string[], number[], number[]];

/** Numeric rows as columns, in primary-key order (type, id, timestamp, partition). */
function numericColumns(rows: { d: WindowDelta; partition: number }[]): Cols {
  rows.sort((a, b) =>
    a.d.metric < b.d.metric
      ? -1
      : a.d.metric > b.d.metric
      ? 1
      : a.d.key < b.d.key
      ? -1
      : a.d.key > b.d.key
      ? 1
      : a.d.windowStart - b.d.windowStart || a.partition - b.partition
  );
  const cols: Cols = [[], [], [], [], []];
  for (const { d, partition } of rows) {
    cols[0].push(d.metric);
    cols[1].push(d.windowStart);
    cols[2].push(d.key);
    cols[3].push(partition);
    cols[4].push(d.value!);
  }
  return cols;
}

/**
 * Writes the partitions of one flush: a transaction per partition,
 * concurrently, on a server (each holds its partition's rows with its offset,
 * so each may commit alone, and two cores write more rows per second than
 * with one transaction); one transaction on PGlite, which runs statements one
 * at a time anyway. `attempt()` is what a retry repeats: partitions already
 * written are not written again. `insertedNew` turns false when rows taken for
 * new were already stored (the layer then upserts only).
 */
export function flushWriter(
  db: Db,
  topic: string,
  windowMs: number,
  aggregations: Aggregations,
  parts: readonly PartitionFlush[],
): { attempt(): Promise<void>; readonly insertedNew: boolean } {
  const pending = new Set(db.kind === "postgres" ? parts.map((p) => [p]) : [parts]);
  let insertedNew = true;
  return {
    async attempt() {
      const results = await Promise.allSettled([...pending].map(async (group) => {
        if (!await writeFlush(db, topic, windowMs, aggregations, group)) insertedNew = false;
        pending.delete(group);
      }));
      const failed = results.find((r) => r.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
    },
    get insertedNew() {
      return insertedNew;
    },
  };
}

/**
 * Writes one flush in one transaction. Returns false when rows taken for new
 * were already stored and the flush was redone with upserts only.
 */
export async function writeFlush(
  db: Db,
  topic: string,
  windowMs: number,
  aggregations: Aggregations,
  parts: readonly PartitionFlush[],
): Promise<boolean> {
  try {
    await writeFlushOnce(db, topic, windowMs, aggregations, parts, true);
    return true;
  } catch (err) {
    if ((err as { code?: unknown })?.code !== UNIQUE_VIOLATION) throw err;
  }
  await writeFlushOnce(db, topic, windowMs, aggregations, parts, false);
  return false;
}

async function writeFlushOnce(
  db: Db,
  topic: string,
  windowMs: number,
  aggregations: Aggregations,
  parts: readonly PartitionFlush[],
  insertNew: boolean,
): Promise<void> {
  const rows: { d: WindowDelta; partition: number }[] = [];
  const inserts: { d: WindowDelta; partition: number }[] = [];
  const letters: [number[], number[], string[], string[], (string | null)[]] = [[], [], [], [], []];
  for (const part of parts) {
    for (const d of part.deltas) rows.push({ d, partition: part.partition });
    for (const d of part.inserts ?? []) {
      (insertNew ? inserts : rows).push({ d, partition: part.partition });
    }
    for (const l of part.letters) {
      letters[0].push(l.partition);
      letters[1].push(l.offset);
      letters[2].push(l.reason);
      letters[3].push(l.detail);
      letters[4].push(l.value === null ? null : Buffer.from(l.value).toString("base64"));
    }
  }
  const finite = (v: number) => (Number.isFinite(v) ? v : null);
  const statements = windowStatements(windowMs, aggregations, rows, inserts);
  const dropped = parts.flatMap((p) => (p.dropped ?? []).map((d) => ({ d, p: p.partition })));
  await db.transaction(async (tx) => {
    for (const [sql, params] of statements) await tx.query(sql, params);
    if (letters[0].length) {
      await tx.query(LETTERS_SQL, [
        topic,
        intArray(letters[0]),
        intArray(letters[1]),
        textArray(letters[2]),
        textArray(letters[3]),
        textArray(letters[4]),
      ]);
    }
    const hours = parts.flatMap((p) => (p.lakeHours ?? []).map((h) => [h, p.partition]));
    if (hours.length) {
      await tx.query(LAKE_HOURS_SQL, [
        topic,
        intArray(hours.map((x) => x[0])),
        intArray(hours.map((x) => x[1])),
      ]);
    }
    if (dropped.length) await tx.query(...droppedStatement(topic, dropped));
    await tx.query(PROGRESS_SQL, [
      topic,
      intArray(parts.map((p) => p.partition)),
      intArray(parts.map((p) => p.nextOffset)),
      intArray(parts.map((p) => p.lakeOffset)),
      intArray(parts.map((p) => finite(p.clockMs))),
      intArray(parts.map((p) => finite(p.watermarkMs))),
      intArray(parts.map((p) => finite(p.lakeClockMs ?? -Infinity))),
      intArray(parts.map((p) => finite(p.caughtUpMs ?? -Infinity))),
    ]);
    for (const part of parts) for (const w of part.writes ?? []) await w.write(tx);
  });
}

/**
 * The statements that merge window deltas into the partial rows: rows known
 * to be new inserted, the others upserted with their metric's combine rule,
 * count_distinct members added to their sets.
 */
function windowStatements(
  windowMs: number,
  aggregations: Aggregations,
  rows: readonly { d: WindowDelta; partition: number }[],
  inserts: { d: WindowDelta; partition: number }[],
): [string, unknown[]][] {
  // Upserts grouped by their combine SQL: aggregations that combine alike share a statement.
  const numeric = new Map<string, { d: WindowDelta; partition: number }[]>();
  const distinct: [string[], number[], string[], number[], string[]] = [[], [], [], [], []];
  for (const { d, partition } of rows) {
    const agg = aggregations.get(d.metric)!;
    if (agg === "count_distinct") {
      for (const m of d.members ?? []) {
        distinct[0].push(d.metric);
        distinct[1].push(d.windowStart);
        distinct[2].push(d.key);
        distinct[3].push(partition);
        distinct[4].push(m);
      }
      continue;
    }
    const combine = combineSql(agg);
    let list = numeric.get(combine);
    if (!list) numeric.set(combine, list = []);
    list.push({ d, partition });
  }
  const rowParams = (c: [string[], number[], string[], number[], (number | string)[]]) => [
    textArray(c[0]),
    intArray(c[1]),
    textArray(c[2]),
    intArray(c[3]),
    typeof c[4][0] === "string" ? textArray(c[4] as string[]) : intArray(c[4] as number[]),
    windowMs,
  ];
  const statements: [string, unknown[]][] = [];
  if (inserts.length) statements.push([INSERT_SQL, rowParams(numericColumns(inserts))]);
  for (const [combine, list] of numeric) {
    statements.push([upsertSql(combine), rowParams(numericColumns(list))]);
  }
  if (distinct[0].length) statements.push([DISTINCT_SQL, rowParams(distinct)]);
  const hourly = hourlyStatement(windowMs, aggregations, [...rows, ...inserts]);
  if (hourly) statements.push(hourly);
  return statements;
}

/** The hourly totals' share of these partial rows (additive metrics only). */
function hourlyStatement(
  windowMs: number,
  aggregations: Aggregations,
  rows: readonly { d: WindowDelta; partition: number }[],
): [string, unknown[]] | undefined {
  const sums = new Map<string, { d: WindowDelta; p: number; h: number; v: number; e: number }>();
  for (const { d, partition } of rows) {
    if (!isAdditive(aggregations.get(d.metric)!)) continue;
    const h = hourStart(d.windowStart);
    const k = `${d.metric}\u0000${h}\u0000${partition}`;
    const e = d.windowStart + windowMs;
    const cur = sums.get(k);
    if (cur) {
      cur.v += d.value!;
      if (e > cur.e) cur.e = e;
    } else sums.set(k, { d, p: partition, h, v: d.value!, e });
  }
  if (sums.size === 0) return undefined;
  const list = [...sums.values()];
  return [HOURLY_SQL, [
    textArray(list.map((x) => x.d.metric)),
    intArray(list.map((x) => x.h)),
    intArray(list.map((x) => x.p)),
    intArray(list.map((x) => x.v)),
    intArray(list.map((x) => x.e)),
  ]];
}

function droppedStatement(
  topic: string,
  dropped: readonly { d: DroppedValue; p: number }[],
): [string, unknown[]] {
  return [DROPPED_SQL, [
    topic,
    textArray(dropped.map((x) => x.d.metric)),
    intArray(dropped.map((x) => x.d.hourMs)),
    intArray(dropped.map((x) => x.p)),
    intArray(dropped.map((x) => x.d.value)),
    intArray(dropped.map((x) => x.d.events)),
  ]];
}

/**
 * Merges one partition's window deltas and late-dropped values into the
 * speed layer's rows inside `tx`, exactly as a flush does (upserts with each
 * metric's combine rule), so rows written by the live layer and by a replay
 * of the lake (src/backfill) add up. Offsets and the lake's progress are the
 * caller's business.
 */
export async function writeWindowDeltas(
  tx: Queryable,
  topic: string,
  windowMs: number,
  aggregations: Aggregations,
  partition: number,
  deltas: readonly WindowDelta[],
  dropped: readonly DroppedValue[] = [],
): Promise<void> {
  const rows = deltas.map((d) => ({ d, partition }));
  for (const [sql, params] of windowStatements(windowMs, aggregations, rows, [])) {
    await tx.query(sql, params);
  }
  if (dropped.length) {
    await tx.query(...droppedStatement(topic, dropped.map((d) => ({ d, p: partition }))));
  }
}

/**
 * Deletes one metric's rows of one partition (every partition when
 * undefined) for windows starting in [fromMs, untilMs) (either bound may be
 * -Infinity / Infinity): its partial values, its count_distinct members and
 * what its late-dropped events added up to in those hours (of `topic`).
 * Returns the partial and member rows deleted.
 */
export async function deleteMetricRows(
  tx: Queryable,
  topic: string,
  metric: string,
  partition: number | undefined,
  fromMs: number,
  untilMs: number,
): Promise<number> {
  const from = Number.isFinite(fromMs) ? fromMs : null;
  const until = Number.isFinite(untilMs) ? untilMs : null;
  const range = (col: string) =>
    `($3::bigint IS NULL OR ${col} >= ${TS("$3::bigint")}) AND ` +
    `($4::bigint IS NULL OR ${col} < ${TS("$4::bigint")})`;
  const params = [metric, partition ?? null, from, until];
  const partials = await tx.query<{ n: number }>(
    `WITH d AS (DELETE FROM speed_partials WHERE type = $1 AND ($2::int IS NULL OR "partition" = $2)
       AND ${range('"timestamp"')} RETURNING 1) SELECT count(*)::int AS n FROM d`,
    params,
  );
  await recountHourly(tx, metric, partition, from, until);
  const members = await tx.query<{ n: number }>(
    `WITH d AS (DELETE FROM speed_distinct WHERE type = $1 AND ($2::int IS NULL OR "partition" = $2)
       AND ${range('"timestamp"')} RETURNING 1) SELECT count(*)::int AS n FROM d`,
    params,
  );
  await tx.query(
    `DELETE FROM speed_late_dropped WHERE type = $1 AND ($2::int IS NULL OR "partition" = $2)
       AND topic = $5
       AND ${range("hour")}`,
    [...params, topic],
  );
  return Number(partials[0]?.n ?? 0) + Number(members[0]?.n ?? 0);
}

/**
 * After partials of `metric` in [from, until) were deleted: the hourly totals
 * of the hours that range touches, recounted from the partials left (a range
 * may start or end inside an hour). Backfills and plan switches only, never a
 * live flush.
 */
async function recountHourly(
  tx: Queryable,
  metric: string,
  partition: number | undefined,
  from: number | null,
  until: number | null,
): Promise<void> {
  // Every hour that holds a moment of [from, until): [hourFrom, hourUntil).
  const hourFrom = from === null ? null : hourStart(from);
  const hourUntil = until === null ? null : hourStart(until - 1) + HOUR_MS;
  const range = (col: string) =>
    `($3::bigint IS NULL OR ${col} >= ${TS("$3::bigint")}) AND ` +
    `($4::bigint IS NULL OR ${col} < ${TS("$4::bigint")})`;
  const params = [metric, partition ?? null, hourFrom, hourUntil];
  await tx.query(
    `DELETE FROM speed_hourly WHERE type = $1 AND ($2::int IS NULL OR "partition" = $2)
       AND ${range("hour")}`,
    params,
  );
  await tx.query(
    `INSERT INTO speed_hourly (type, hour, "partition", value, last_window_end)
     SELECT p.type, date_trunc('hour', p."timestamp"), p."partition", sum(p.value), max(p.window_end)
     FROM speed_partials p
     JOIN speed_metrics m ON m.type = p.type AND m.aggregation IN ('sum', 'count')
     WHERE p.type = $1 AND ($2::int IS NULL OR p."partition" = $2) AND ${range('p."timestamp"')}
     GROUP BY p.type, date_trunc('hour', p."timestamp"), p."partition"`,
    params,
  );
}
