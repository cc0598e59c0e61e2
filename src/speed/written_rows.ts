/**
 * Which partial rows of one Kafka partition PostgreSQL may already hold, so a
 * flush can write rows it knows to be new with a plain INSERT (faster than
 * `INSERT … ON CONFLICT DO UPDATE`, whose speculative insertion costs an extra
 * index probe per row; BENCHMARKS.md, "Measurements behind the code") and
 * upsert only the others.
 *
 * A row (metric, window, key) of this partition can exist before this session
 * only if an applied event fell in that window, and every applied event is at
 * or before the partition's restored clock (stored in the same transaction as
 * the rows). So windows starting after that clock's window are new, and within
 * this session a row exists once a flush has taken it. Rows the tracker cannot
 * vouch for are upserted, and if a plain INSERT still meets a stored row
 * (another topic's rows under the same partition number, a former owner that
 * kept writing) the sink redoes the flush with upserts only: correctness never
 * depends on this bookkeeping, only speed.
 */
import type { WindowDelta } from "../core/partition_windows.ts";
import { windowStart } from "../core/window.ts";

export interface SplitDeltas {
  /** Rows PostgreSQL may hold: merged with the metric's combine rule. */
  readonly upserts: WindowDelta[];
  /** Rows PostgreSQL cannot hold yet: inserted. */
  readonly inserts: WindowDelta[];
}

export class WrittenRows {
  /** Windows starting at or after this hold no row from before this session. */
  readonly #freshFrom: number;
  /** Window start → metric → keys taken by a flush in this session. */
  readonly #taken = new Map<number, Map<string, Set<string>>>();

  /**
   * @param restoredClockMs the partition's stored clock (-Infinity when it
   *   never flushed: every window is new).
   */
  constructor(restoredClockMs: number, readonly windowMs: number) {
    this.#freshFrom = Number.isFinite(restoredClockMs)
      ? windowStart(restoredClockMs, windowMs) + windowMs
      : -Infinity;
  }

  /**
   * Splits a flush's deltas and records the inserted rows as written. Members
   * of count_distinct metrics are always upserts (their sink ignores
   * duplicates).
   */
  split(deltas: readonly WindowDelta[]): SplitDeltas {
    const upserts: WindowDelta[] = [];
    const inserts: WindowDelta[] = [];
    let lastStart = NaN, lastMetric = "";
    let keys: Set<string> | undefined;
    for (const d of deltas) {
      if (d.members !== undefined || d.windowStart < this.#freshFrom) {
        upserts.push(d);
        continue;
      }
      // Deltas come grouped by window and metric: look the set up once per group.
      if (d.windowStart !== lastStart || d.metric !== lastMetric) {
        lastStart = d.windowStart;
        lastMetric = d.metric;
        let byMetric = this.#taken.get(lastStart);
        if (!byMetric) this.#taken.set(lastStart, byMetric = new Map());
        keys = byMetric.get(lastMetric);
        if (!keys) byMetric.set(lastMetric, keys = new Set());
      }
      if (keys!.has(d.key)) upserts.push(d);
      else {
        keys!.add(d.key);
        inserts.push(d);
      }
    }
    return { upserts, inserts };
  }

  /** Forgets windows that no event can change any more (late beyond the allowed lateness). */
  prune(watermarkMs: number, allowedLatenessMs: number): void {
    for (const start of this.#taken.keys()) {
      if (start + this.windowMs + allowedLatenessMs <= watermarkMs) this.#taken.delete(start);
    }
  }

  /** Keys recorded (for tests and memory checks). */
  get size(): number {
    let n = 0;
    for (const m of this.#taken.values()) for (const s of m.values()) n += s.size;
    return n;
  }
}
