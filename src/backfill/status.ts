/**
 * What a backfill looks like from outside: one entry per metric, as
 * `/api/v1/config` and the CLI show it, folded from its partitions' rows
 * and from the waits of the worker that holds them.
 */
import type { BackfillRow } from "./store.ts";

/** A row held up by the lake, as the worker that holds it last saw it. */
export interface RowWait {
  readonly metric: string;
  readonly partition: number;
  /** Why the replay does not go on, one sentence (lake_wait.ts). */
  readonly reason: string;
  /** When the wait began, epoch ms. */
  readonly sinceMs: number;
}

/** One metric's backfill, as `/api/v1/config` and the CLI show it. */
export interface MetricBackfill {
  readonly metric: string;
  readonly reason: BackfillRow["reason"];
  readonly generation?: number;
  /** `running`: rows left; `finished`: every partition is done. */
  readonly state: "running" | "finished";
  /** Share of the offsets to replay that are replayed, 0..1. */
  readonly progress: number;
  readonly partitions: number;
  readonly finishedPartitions: number;
  /** Where each partition switched (events below were replayed from the lake). */
  readonly switchOffsets: Readonly<Record<string, number>>;
  /** First window recomputed (ISO), null for every hour of the lake. */
  readonly from: string | null;
  readonly events: number;
  readonly rowsWritten: number;
  readonly createdAt: string;
  readonly finishedAt: string | null;
  /**
   * What the backfill waits for, per partition held up (empty when it is not
   * waiting, or when another process holds the rows).
   */
  readonly waiting: readonly { partition: number; reason: string; since: string }[];
}

export interface BackfillStatus {
  /** Something is left to recompute or run. */
  readonly active: boolean;
  readonly metrics: readonly MetricBackfill[];
  readonly batchHours: {
    readonly queued: number;
    readonly finished: number;
    readonly failed: number;
  };
}

/** Share of [start, stop) below `next`, in percent with one decimal. */
export function percent(start: number, next: number, stop: number): number {
  if (stop <= start) return 100;
  return Math.round((Math.min(1, Math.max(0, (next - start) / (stop - start)))) * 1000) / 10;
}

const iso = (ms?: number) => (ms === undefined ? null : new Date(ms).toISOString());

/** Rows grouped by metric, newest first, with the waits of their unfinished rows. */
export function summarize(
  rows: readonly BackfillRow[],
  waits: readonly RowWait[] = [],
): MetricBackfill[] {
  const by = new Map<string, BackfillRow[]>();
  for (const r of rows) {
    let list = by.get(r.metric);
    if (!list) by.set(r.metric, list = []);
    list.push(r);
  }
  const out: MetricBackfill[] = [];
  for (const [metric, list] of by) out.push(summarizeMetric(metric, list, waits));
  return out.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
}

function summarizeMetric(
  metric: string,
  list: readonly BackfillRow[],
  waits: readonly RowWait[],
): MetricBackfill {
  let total = 0, done = 0;
  for (const r of list) {
    const start = r.startOffset ?? 0;
    const span = Math.max(0, r.stopOffset - start);
    total += span;
    done += r.finishedAt !== undefined
      ? span
      : r.nextOffset === undefined
      ? 0
      : Math.min(span, Math.max(0, r.nextOffset - start));
  }
  const finished = list.filter((r) => r.finishedAt !== undefined).length;
  const first = list.reduce((a, b) => (a.createdAt <= b.createdAt ? a : b));
  const lastDone = list.every((r) => r.finishedAt !== undefined)
    ? Math.max(...list.map((r) => r.finishedAt!))
    : undefined;
  const open = new Set(list.filter((r) => r.finishedAt === undefined).map((r) => r.partition));
  return {
    metric,
    reason: first.reason,
    ...(first.generation !== undefined ? { generation: first.generation } : {}),
    state: finished === list.length ? "finished" : "running",
    progress: total === 0 ? (finished === list.length ? 1 : 0) : done / total,
    partitions: list.length,
    finishedPartitions: finished,
    switchOffsets: Object.fromEntries(
      [...list].sort((a, b) => a.partition - b.partition).map((r) => [
        String(r.partition),
        r.stopOffset,
      ]),
    ),
    from: Number.isFinite(first.fromMs) ? iso(first.fromMs) : null,
    events: list.reduce((n, r) => n + r.events, 0),
    rowsWritten: list.reduce((n, r) => n + r.rowsWritten, 0),
    createdAt: iso(first.createdAt)!,
    finishedAt: iso(lastDone),
    waiting: waits
      .filter((w) => w.metric === metric && open.has(w.partition))
      .sort((a, b) => a.partition - b.partition)
      .map((w) => ({ partition: w.partition, reason: w.reason, since: iso(w.sinceMs)! })),
  };
}
