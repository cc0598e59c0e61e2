/**
 * Folds a set of rows into one result per (metric, bucket, key): the batch
 * layer's hour, and the reference computation tests compare the speed layer
 * with. Same compiled metrics, same combine rules as the speed layer.
 */
import { GroupAccumulator } from "./aggregate.ts";
import type { CompiledMetric, MetricRow } from "./metric.ts";
import { windowStart } from "./window.ts";

/** metric name → bucket start (epoch ms) → key → value. */
export type Totals = Map<string, Map<number, Map<string, number>>>;

/** Aggregates `rows` into buckets of `bucketMs` for every metric. */
export function aggregateRows(
  metrics: readonly CompiledMetric[],
  rows: Iterable<MetricRow>,
  bucketMs: number,
): Totals {
  const accs = new Map<number, GroupAccumulator[]>();
  for (const row of rows) {
    const b = windowStart(row.timestamp * 1000, bucketMs);
    let list = accs.get(b);
    if (!list) accs.set(b, list = metrics.map((m) => new GroupAccumulator(m)));
    for (let i = 0; i < list.length; i++) if (metrics[i].accepts(row)) list[i].add(row);
  }
  const out: Totals = new Map(metrics.map((m) => [m.name, new Map()]));
  for (const [b, list] of accs) {
    for (const acc of list) {
      if (acc.size > 0) out.get(acc.metric.name)!.set(b, acc.results());
    }
  }
  return out;
}
