/**
 * Writes one hour's results in ONE transaction, so readers see the old hour or
 * the new one, never half: replace the hour's rows of the plan's batch metric
 * types in `bytes_hourly` and its rows in `user_quota_limit`, upsert the
 * reconciliation with the speed layer, let participants (participant.ts, e.g.
 * the quota alerts' confirmation) write their share, mark the run succeeded and the hour
 * completed at the lake change number the run read the lake at (a later change
 * makes it stale). The run's lease is checked first: a run that lost its lease
 * (its process was presumed dead and another took the hour) must not write.
 */
import type { Plan } from "../config/plan.ts";
import type { Db, Queryable } from "../db/db.ts";
import { reconcilePairs, upsertCatalog } from "./catalog.ts";
import type { HourResult } from "./compute.ts";
import { intArray, textArray } from "../speed/mod.ts";
import { sqlHour } from "./hours.ts";
import type { HourWrite } from "./participant.ts";
import { reconcile, type Unexplained } from "./reconcile.ts";
import { readSpeedSide, settleLakeChanges } from "../speed/mod.ts";
import { markSucceeded, type RunStats } from "./runs.ts";

export type { Unexplained };

export interface WriteOutcome {
  readonly rowsWritten: number;
  /** Reconciled metrics with an unexplained difference (data went missing). */
  readonly unexplained: readonly Unexplained[];
}

export class LeaseLostError extends Error {
  constructor(runId: string) {
    super(`run ${runId} lost its lease on the hour (another run took over): nothing written`);
    this.name = "LeaseLostError";
  }
}

export async function writeHour(
  db: Db,
  plan: Plan,
  hour: number,
  runId: string,
  result: HourResult,
  stats: Omit<RunStats, "rowsWritten" | "breaches">,
  /** The lake change number drawn before the lake was read (hour_state.ts drawLakeSeq). */
  lakeSeq: number,
  /** Participants' shares of the hour (participant.ts), written in its transaction. */
  writes: readonly HourWrite[] = [],
): Promise<WriteOutcome> {
  const h = sqlHour(hour);
  const types = plan.batch.metrics.map((m) => m.name);
  const ids: string[] = [];
  const values: number[] = [];
  const kinds: string[] = [];
  // In key order (type, then id; one hour): both B-trees of bytes_hourly are
  // then walked once, about a third faster than in the order ids were met.
  // The order only speeds the insert: the default sort (UTF-16 code units, the
  // C collation's order for ASCII) does without 800,000 comparator calls.
  for (const type of [...result.metrics.keys()].sort()) {
    const byKey = result.metrics.get(type)!;
    for (const key of [...byKey.keys()].sort()) {
      ids.push(key);
      values.push(byKey.get(key)!);
      kinds.push(type);
    }
  }
  return await db.transaction(async (tx) => {
    const owned = await tx.query(
      "SELECT 1 FROM batch_runs WHERE run_id = $1 AND status = 'running' FOR UPDATE",
      [runId],
    );
    if (owned.length === 0) throw new LeaseLostError(runId);

    await tx.query(
      "DELETE FROM bytes_hourly WHERE timestamp = $1::timestamp AND type = ANY($2::text[])",
      [h, types],
    );
    if (ids.length) {
      await tx.query(
        `INSERT INTO bytes_hourly (timestamp, id, value, type)
         SELECT $1::timestamp, u.id, u.value, u.type
         FROM unnest($2::text[], $3::bigint[], $4::text[]) AS u(id, value, type)`,
        // Array literals: postgres.js serialises a JS array element by element,
        // which for an hour of 100,000 devices cost more than the insert.
        [h, textArray(ids), intArray(values), textArray(kinds)],
      );
    }
    const breaches = await replaceBreaches(tx, plan, h, result);
    // The speed side is read in this transaction: the stored difference is
    // what the two layers said at the same moment.
    const unexplained = await writeReconciliation(tx, plan, hour, result);
    for (const w of writes) await w.write(tx);
    await upsertCatalog(tx, plan);
    await markSucceeded(tx, runId, { ...stats, rowsWritten: ids.length, breaches });
    await tx.query(
      `INSERT INTO batch_hours (hour, last_run_id, completed_at, lake_seq)
       VALUES ($1::timestamp, $2, now(), $3)
       ON CONFLICT (hour) DO UPDATE SET last_run_id = EXCLUDED.last_run_id,
         completed_at = EXCLUDED.completed_at, lake_seq = EXCLUDED.lake_seq`,
      [h, runId, lakeSeq],
    );
    // Changes this run read are seen; a later one keeps the hour stale.
    await settleLakeChanges(tx, h, lakeSeq);
    return { rowsWritten: ids.length, unexplained };
  });
}

/** Replaces the hour's quota breaches (when the quota rule is on); returns how many. */
async function replaceBreaches(
  tx: Queryable,
  plan: Plan,
  h: Date,
  result: HourResult,
): Promise<number> {
  if (!plan.batch.quota.enabled) return 0;
  await tx.query("DELETE FROM user_quota_limit WHERE timestamp = $1::timestamp", [h]);
  const b = result.breaches;
  if (b.length) {
    await tx.query(
      `INSERT INTO user_quota_limit (email, usage, quota, timestamp)
       SELECT u.email, u.usage, u.quota, $1::timestamp
       FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS u(email, usage, quota)`,
      [h, b.map((x) => x.email), b.map((x) => x.usage), b.map((x) => x.quota)],
    );
  }
  return b.length;
}

/** Replaces the hour's reconciliation rows (reconcile.ts); returns the unexplained ones. */
async function writeReconciliation(
  tx: Queryable,
  plan: Plan,
  hour: number,
  result: HourResult,
): Promise<Unexplained[]> {
  await tx.query("DELETE FROM batch_reconciliation_t WHERE hour = $1::timestamp", [
    sqlHour(hour),
  ]);
  const pairs = reconcilePairs(plan);
  if (pairs.length === 0) return [];
  const totals = pairs.map((p) => {
    let sum = 0;
    for (const v of result.metrics.get(p.metric)?.values() ?? []) sum += v;
    return sum;
  });
  const unknownDropped = pairs.map((p) => result.droppedValues.get(p.speedMetric) ?? 0);
  const speed = await readSpeedSide(tx, hour, [...new Set(pairs.map((p) => p.speedMetric))]);
  const rows = pairs.map((p, i) => ({
    p,
    batch: totals[i],
    unknown: unknownDropped[i],
    c: reconcile(totals[i], unknownDropped[i], speed.get(p.speedMetric)!),
  }));
  await tx.query(
    `INSERT INTO batch_reconciliation_t
       (hour, metric, speed_metric, batch_value, speed_value, difference, late_dropped,
        unknown_dropped, unexplained, speed_final, computed_at)
     SELECT $1::timestamp, u.m, u.s, u.b, u.sv, u.d, u.l, u.k, u.x, u.f::boolean, now()
     FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
       $8::bigint[], $9::bigint[], $10::text[]) AS u(m, s, b, sv, d, l, k, x, f)`,
    [
      sqlHour(hour),
      rows.map((r) => r.p.metric),
      rows.map((r) => r.p.speedMetric),
      rows.map((r) => r.batch),
      rows.map((r) => r.c.speedValue),
      rows.map((r) => r.c.difference),
      rows.map((r) => r.c.lateDropped),
      rows.map((r) => r.unknown),
      rows.map((r) => r.c.unexplained),
      // As text: a JS boolean[] does not reach PostgreSQL as boolean[] here.
      rows.map((r) => String(r.c.speedFinal)),
    ],
  );
  return rows.filter((r) => r.c.unexplained !== 0).map((r) => ({
    metric: r.p.metric,
    speedMetric: r.p.speedMetric,
    difference: r.c.difference,
    lateDropped: r.c.lateDropped,
    unexplained: r.c.unexplained,
  }));
}

/**
 * Deletes every batch row of a dropped metric in `tx` (its hourly rows, its
 * reconciliation as either side, its catalog entry); rows deleted per table.
 */
export async function dropBatchMetric(
  tx: Queryable,
  name: string,
): Promise<{ bytes_hourly: number; batch_reconciliation: number; metric_catalog: number }> {
  const count = async (sql: string) => {
    const rows = await tx.query<{ n: number }>(
      `WITH d AS (${sql} RETURNING 1) SELECT count(*)::int AS n FROM d`,
      [name],
    );
    return Number(rows[0]?.n ?? 0);
  };
  return {
    bytes_hourly: await count("DELETE FROM bytes_hourly WHERE type = $1"),
    batch_reconciliation: await count(
      "DELETE FROM batch_reconciliation_t WHERE metric = $1 OR speed_metric = $1",
    ),
    metric_catalog: await count("DELETE FROM metric_catalog WHERE type = $1"),
  };
}

/** Whether the batch layer has catalogued `name` or written an hourly row of it. */
export async function batchMetricKnown(db: Queryable, name: string): Promise<boolean> {
  const rows = await db.query(
    `SELECT 1 FROM metric_catalog WHERE type = $1
     UNION ALL (SELECT 1 FROM bytes_hourly WHERE type = $1 LIMIT 1) LIMIT 1`,
    [name],
  );
  return rows.length > 0;
}
