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
import type { Db } from "../db/db.ts";
import { reconcilePairs, upsertCatalog } from "./catalog.ts";
import type { HourResult } from "./compute.ts";
import { sqlHour } from "./hours.ts";
import type { HourWrite } from "./participant.ts";
import { markSucceeded, type RunStats } from "./runs.ts";

/** A reconciled metric whose difference the speed layer's late-dropped events do not explain. */
export interface Unexplained {
  readonly metric: string;
  readonly speedMetric: string;
  readonly difference: number;
  readonly lateDropped: number;
  readonly unexplained: number;
}

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
  for (const [type, byKey] of result.metrics) {
    for (const [key, value] of byKey) {
      ids.push(key);
      values.push(value);
      kinds.push(type);
    }
  }
  const pairs = reconcilePairs(plan);
  const totals = pairs.map((p) => {
    let sum = 0;
    for (const v of result.metrics.get(p.metric)?.values() ?? []) sum += v;
    return sum;
  });
  const unknownDropped = pairs.map((p) => result.droppedValues.get(p.speedMetric) ?? 0);

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
        [h, ids, values, kinds],
      );
    }
    let breaches = 0;
    if (plan.batch.quota.enabled) {
      await tx.query("DELETE FROM user_quota_limit WHERE timestamp = $1::timestamp", [h]);
      const b = result.breaches;
      breaches = b.length;
      if (b.length) {
        await tx.query(
          `INSERT INTO user_quota_limit (email, usage, quota, timestamp)
           SELECT u.email, u.usage, u.quota, $1::timestamp
           FROM unnest($2::text[], $3::bigint[], $4::bigint[]) AS u(email, usage, quota)`,
          [h, b.map((x) => x.email), b.map((x) => x.usage), b.map((x) => x.quota)],
        );
      }
    }
    await tx.query("DELETE FROM batch_reconciliation_t WHERE hour = $1::timestamp", [h]);
    let unexplained: Unexplained[] = [];
    if (pairs.length) {
      // The speed side is read in this transaction: the stored difference is
      // what the two layers said at the same moment. What the speed layer
      // dropped as too late explains a positive difference, the rows of
      // unknown devices the batch dropped a negative one; the rest is lost data.
      const rows = await tx.query<{
        metric: string;
        speed_metric: string;
        difference: number | string;
        late_dropped: number | string;
        unexplained: number | string;
      }>(
        `INSERT INTO batch_reconciliation_t
           (hour, metric, speed_metric, batch_value, speed_value, difference, late_dropped,
            unknown_dropped, unexplained, computed_at)
         SELECT $1::timestamp, u.metric, u.speed_metric, u.batch_value, s.v,
           u.batch_value - s.v, l.v, u.unknown_dropped, u.batch_value - s.v - l.v + u.unknown_dropped,
           now()
         FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[])
           AS u(metric, speed_metric, batch_value, unknown_dropped)
         CROSS JOIN LATERAL (
           SELECT COALESCE(sum(b.value), 0)::bigint AS v FROM bytes b
           WHERE b.type = u.speed_metric AND b.timestamp >= $1::timestamp
             AND b.timestamp < $1::timestamp + interval '1 hour'
         ) s
         CROSS JOIN LATERAL (
           SELECT COALESCE(sum(d.value), 0)::bigint AS v FROM speed_late_dropped d
           WHERE d.type = u.speed_metric AND d.hour = $1::timestamp
         ) l
         RETURNING metric, speed_metric, difference, late_dropped, unexplained`,
        [h, pairs.map((p) => p.metric), pairs.map((p) => p.speedMetric), totals, unknownDropped],
      );
      unexplained = rows.filter((r) => Number(r.unexplained) !== 0).map((r) => ({
        metric: r.metric,
        speedMetric: r.speed_metric,
        difference: Number(r.difference),
        lateDropped: Number(r.late_dropped),
        unexplained: Number(r.unexplained),
      }));
    }
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
    await tx.query(
      `UPDATE lake_hour_changes SET pending_since = NULL
       WHERE hour = $1::timestamp AND seq <= $2 AND pending_since IS NOT NULL`,
      [h, lakeSeq],
    );
    return { rowsWritten: ids.length, unexplained };
  });
}
