/**
 * Backfills and drops asked for by hand (`deno task backfill`), beside a
 * running pipeline or not.
 *
 * A speed metric's hours are recomputed without a switch: for each
 * partition, in one transaction holding its `speed_progress` row (so no
 * flush of the live layer commits meanwhile), the metric's rows of the
 * windows asked for are deleted and a backfill row records the stored next
 * offset N as the replay's stop. The rows then hold exactly what the live
 * layer adds from N on, and the replay adds the lake's events below N.
 *
 * Dropping deletes every row of a metric that no pipeline file declares any
 * more: its speed windows, batch hours, reconciliation and catalog entries.
 */
import { definitionHash } from "../config/hash.ts";
import type { MetricPlan, Plan } from "../config/plan.ts";
import type { Db, Queryable } from "../db/db.ts";
import { UserError } from "../errors.ts";
import { deleteMetricRows } from "../speed/mod.ts";
import type { RunHolder } from "../holder.ts";
import * as store from "./store.ts";

/** SQLSTATE of a lock wait that ran out (`lock_timeout`). */
const LOCK_NOT_AVAILABLE = "55P03";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ManualSpeedBackfill {
  readonly metric: MetricPlan;
  /** Windows starting at or after it (-Infinity: every hour of the lake). */
  readonly fromMs: number;
  /** Windows starting before it (Infinity: no bound). */
  readonly untilMs: number;
}

/**
 * Records the backfill rows of a speed metric for every partition with
 * stored progress, claimed by `holder`. Returns the stop offsets.
 */
export async function startManualBackfill(
  db: Db,
  topic: string,
  b: ManualSpeedBackfill,
  holder: RunHolder,
  leaseMs: number,
): Promise<Map<number, number>> {
  const recorded = (await store.readDefinitions(db, topic))
    .find((d) => d.layer === "speed" && d.name === b.metric.name);
  const hash = definitionHash(b.metric);
  if (recorded?.hash !== undefined && recorded.hash !== hash) {
    throw new UserError(
      `the running pipeline computes "${b.metric.name}" with another definition than this file: ` +
        "save the file so the pipeline reloads it (or start it), which recomputes its history",
    );
  }
  const parts = await db.query<{ partition: number }>(
    `SELECT "partition" FROM speed_progress WHERE topic = $1 ORDER BY "partition"`,
    [topic],
  );
  if (parts.length === 0) {
    throw new UserError(
      `the speed layer has recorded no progress for topic "${topic}": nothing to recompute`,
    );
  }
  const stops = new Map<number, number>();
  for (const { partition } of parts) {
    const p = Number(partition);
    stops.set(p, await startPartition(db, topic, b, p, hash, holder, leaseMs));
  }
  return stops;
}

async function startPartition(
  db: Db,
  topic: string,
  b: ManualSpeedBackfill,
  partition: number,
  hash: string,
  holder: RunHolder,
  leaseMs: number,
): Promise<number> {
  for (let attempt = 1;; attempt++) {
    try {
      return await db.transaction(async (tx) => {
        // A flush of the live layer writes its rows, then this row: waiting
        // on its rows while holding this row would deadlock, so give up soon
        // and try again (the flush then goes through).
        if (db.kind === "postgres") await tx.query("SET LOCAL lock_timeout = '500ms'");
        const progress = await tx.query<{ next_offset: number }>(
          `SELECT next_offset FROM speed_progress WHERE topic = $1 AND "partition" = $2
           FOR UPDATE`,
          [topic, partition],
        );
        const stop = Number(progress[0]?.next_offset ?? 0);
        const row = await store.lockRow(tx, topic, b.metric.name, partition);
        if (row && row.finishedAt === undefined && row.holder && row.holder !== holder.id) {
          const live = await tx.query(
            `SELECT 1 FROM backfill_partitions WHERE topic = $1 AND metric = $2
             AND "partition" = $3 AND lease_until > now()`,
            [topic, b.metric.name, partition],
          );
          if (live.length > 0 && !holder.gone(row.holder)) {
            throw new UserError(
              `a backfill of "${b.metric.name}" is running (partition ${partition}, ${row.holder}): ` +
                "wait for it to finish",
            );
          }
        }
        await deleteMetricRows(tx, topic, b.metric.name, partition, b.fromMs, b.untilMs);
        await store.putRow(tx, {
          topic,
          metric: b.metric,
          partition,
          hash,
          reason: "manual",
          stopOffset: stop,
          fromMs: b.fromMs,
          untilMs: b.untilMs,
          holder: holder.id,
          leaseMs,
        });
        return stop;
      });
    } catch (err) {
      if ((err as { code?: unknown })?.code !== LOCK_NOT_AVAILABLE || attempt >= 50) throw err;
      await sleep(50 + Math.random() * 200);
    }
  }
}

/** Rows deleted by `dropMetric`, per table. */
export type DropCounts = Record<string, number>;

/**
 * Deletes every row of `name`, which neither `plan` nor the running
 * pipeline's recorded definitions declare; refuses an active metric.
 */
export async function dropMetric(db: Db, plan: Plan, name: string): Promise<DropCounts> {
  const topic = plan.source.kafka.topic;
  const inPlan = [
    ...plan.speed.metrics.filter((m) => m.name === name).map(() => "speed.metrics"),
    ...plan.batch.metrics.filter((m) => m.name === name).map(() => "batch.metrics"),
  ];
  if (inPlan.length > 0) {
    throw new UserError(
      `"${name}" is a metric of ${plan.file} (${inPlan.join(", ")}): remove it from the file, ` +
        "let the pipeline reload it, then drop its rows",
    );
  }
  const recorded = (await store.readDefinitions(db, topic)).filter((d) => d.name === name);
  if (recorded.length > 0) {
    throw new UserError(
      `the running pipeline still computes "${name}" (${
        recorded.map((r) => `${r.layer}.metrics`).join(", ")
      } as last applied): remove it from the file it runs first`,
    );
  }
  return await db.transaction(async (tx) => {
    const counts: DropCounts = {};
    const del = async (table: string, sql: string) => {
      const rows = await tx.query<{ n: number }>(
        `WITH d AS (${sql} RETURNING 1) SELECT count(*)::int AS n FROM d`,
        [name],
      );
      counts[table] = Number(rows[0]?.n ?? 0);
    };
    counts.speed_windows = await deleteMetricRows(tx, topic, name, undefined, -Infinity, Infinity);
    await del("speed_late_dropped", "DELETE FROM speed_late_dropped WHERE type = $1");
    await del("speed_metrics", "DELETE FROM speed_metrics WHERE type = $1");
    await del("backfill_partitions", "DELETE FROM backfill_partitions WHERE metric = $1");
    await del("bytes_hourly", "DELETE FROM bytes_hourly WHERE type = $1");
    await del(
      "batch_reconciliation",
      "DELETE FROM batch_reconciliation_t WHERE metric = $1 OR speed_metric = $1",
    );
    await del("metric_catalog", "DELETE FROM metric_catalog WHERE type = $1");
    return counts;
  });
}

/** Whether `metric` has rows anywhere (a name typed wrong drops nothing, and says so). */
export async function hasRows(db: Queryable, name: string): Promise<boolean> {
  const rows = await db.query(
    `SELECT 1 FROM speed_metrics WHERE type = $1
     UNION ALL SELECT 1 FROM metric_catalog WHERE type = $1
     UNION ALL (SELECT 1 FROM bytes_hourly WHERE type = $1 LIMIT 1) LIMIT 1`,
    [name],
  );
  return rows.length > 0;
}
