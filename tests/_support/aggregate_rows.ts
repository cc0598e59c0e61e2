/**
 * A plain fold for tests: rows into one result per (metric, bucket, key), one
 * row at a time through the core's compiled metrics and GroupAccumulator, the
 * rules both layers apply.
 */
import {
  type CompiledMetric,
  GroupAccumulator,
  type MetricRow,
  windowStart,
} from "../../src/core/mod.ts";

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
