/**
 * What the plan says about metric types, in the shapes SQL needs: the
 * `metric_catalog` rows the serving views fold speed windows with, and the
 * batch/speed pairs compared per hour (reconciliation). A batch metric pairs
 * with its `reconcile_with`, or else with a speed metric of the same name;
 * only additive aggregations (sum, count) have comparable hourly totals.
 */
import type { MetricPlan, Plan } from "../config/plan.ts";
import { isAdditive } from "../core/aggregate.ts";
import type { Queryable } from "../db/db.ts";

export interface ReconcilePair {
  readonly metric: string;
  readonly speedMetric: string;
}

export function reconcilePairs(plan: Plan): ReconcilePair[] {
  const speed = new Map(plan.speed.metrics.map((m) => [m.name, m]));
  const out: ReconcilePair[] = [];
  for (const m of plan.batch.metrics) {
    if (!isAdditive(m.aggregation)) continue;
    const name = m.reconcileWith ?? m.name;
    const s = speed.get(name);
    // reconcile_with names the speed metric explicitly: trust it even when the
    // speed layer is configured elsewhere; a same-name pairing needs the match.
    if (m.reconcileWith || (s && s.aggregation === m.aggregation)) {
      out.push({ metric: m.name, speedMetric: name });
    }
  }
  return out;
}

/**
 * The speed metrics of the plan that batch metrics reconcile with: the batch
 * layer evaluates them over the rows it drops (unknown devices under the
 * `drop` policy), which the speed layer did count.
 */
export function reconciledSpeedMetrics(plan: Plan): MetricPlan[] {
  const names = new Set(reconcilePairs(plan).map((p) => p.speedMetric));
  return plan.speed.metrics.filter((m) => names.has(m.name));
}

/** Upserts the plan's metric types into `metric_catalog`. */
export async function upsertCatalog(db: Queryable, plan: Plan): Promise<void> {
  const rows = [
    ...plan.speed.metrics.map((m) => ["speed", m.name, m.aggregation]),
    ...plan.batch.metrics.map((m) => ["batch", m.name, m.aggregation]),
  ];
  if (rows.length === 0) return;
  await db.query(
    `INSERT INTO metric_catalog (layer, type, aggregation)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
     ON CONFLICT (type, layer) DO UPDATE SET aggregation = EXCLUDED.aggregation`,
    [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2])],
  );
}
