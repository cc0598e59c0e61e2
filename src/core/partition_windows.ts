/**
 * The speed layer's window state for ONE Kafka partition, free of I/O.
 *
 * Each partition keeps its own event-time clock (highest event time seen) and
 * watermark (clock minus allowed lateness), so results do not depend on which
 * instance owns which partition, nor on restarts: the clock is persisted with
 * the partition's progress and restored from it.
 *
 * The state holds only *deltas*: what changed in each window since the last
 * `takeDeltas()`. The sink merges them into stored partial rows with the
 * aggregation's combine rule, in the same transaction as the partition's
 * offset, so a replay never counts an event twice and no window has to stay
 * in memory until it closes.
 */
import { GroupAccumulator, isAdditive } from "./aggregate.ts";
import type { CompiledMetric, MetricRow } from "./metric.ts";
import { classify, hourStart, type Lateness, windowStart } from "./window.ts";

export interface WindowOptions {
  readonly windowMs: number;
  readonly allowedLatenessMs: number;
}

/** A change to one (metric, window, key) partial row. */
export interface WindowDelta {
  readonly metric: string;
  readonly windowStart: number;
  readonly key: string;
  /** Partial value to combine (sum, count, min, max). */
  readonly value?: number;
  /** New members (count_distinct). */
  readonly members?: readonly string[];
}

/**
 * What the events one metric lost to the lateness rule in one hour add up to
 * (additive metrics: sum and count), so a batch-speed difference can be
 * told apart from lost data.
 */
export interface DroppedValue {
  readonly metric: string;
  readonly hourMs: number;
  readonly value: number;
  readonly events: number;
}

export interface AddCounts {
  on_time: number;
  late_updated: number;
  late_dropped: number;
}

export class PartitionWindows {
  #clockMs: number;
  #maxWindowEnd = -Infinity;
  // window start → one accumulator per metric, holding changes since the last take
  #dirty = new Map<number, GroupAccumulator[]>();
  // metric and hour → what dropped events added up to since the last take
  #dropped = new Map<string, { metric: string; hourMs: number; value: number; events: number }>();

  constructor(
    readonly metrics: readonly CompiledMetric[],
    readonly options: WindowOptions,
    /** Restored clock (highest event time seen, epoch ms); -Infinity when new. */
    clockMs = -Infinity,
  ) {
    this.#clockMs = clockMs;
    if (Number.isFinite(clockMs)) {
      this.#maxWindowEnd = windowStart(clockMs, options.windowMs) + options.windowMs;
    }
  }

  /** Highest event time seen, epoch ms (-Infinity before the first event). */
  get clockMs(): number {
    return this.#clockMs;
  }

  /** Clock minus allowed lateness: windows ending at or before it are written. */
  get watermarkMs(): number {
    return this.#clockMs - this.options.allowedLatenessMs;
  }

  /** Number of windows with changes not yet taken. */
  get dirtyWindows(): number {
    return this.#dirty.size;
  }

  /** Number of (metric, window, key) rows with changes not yet taken. */
  get dirtyRows(): number {
    let n = 0;
    for (const accs of this.#dirty.values()) for (const acc of accs) n += acc.size;
    return n;
  }

  /**
   * Adds one valid event (in offset order) and says how late it was. A
   * late_dropped event changes no window; what it adds to additive metrics is
   * noted per hour (`takeDropped`).
   */
  add(row: MetricRow): Lateness {
    const tMs = row.timestamp * 1000;
    const { windowMs, allowedLatenessMs } = this.options;
    const start = windowStart(tMs, windowMs);
    const lateness = classify(start, windowMs, allowedLatenessMs, this.watermarkMs);
    if (lateness !== "late_dropped") {
      let accs = this.#dirty.get(start);
      if (!accs) {
        accs = this.metrics.map((m) => new GroupAccumulator(m));
        this.#dirty.set(start, accs);
      }
      for (let i = 0; i < accs.length; i++) {
        if (this.metrics[i].accepts(row)) accs[i].add(row);
      }
      if (start + windowMs > this.#maxWindowEnd) this.#maxWindowEnd = start + windowMs;
    } else this.#drop(row, hourStart(tMs));
    if (tMs > this.#clockMs) this.#clockMs = tMs;
    return lateness;
  }

  #drop(row: MetricRow, hourMs: number): void {
    for (const m of this.metrics) {
      if (!isAdditive(m.aggregation) || !m.accepts(row)) continue;
      const key = `${m.name}\u0000${hourMs}`;
      let d = this.#dropped.get(key);
      if (!d) this.#dropped.set(key, d = { metric: m.name, hourMs, value: 0, events: 0 });
      d.value += m.value(row);
      d.events++;
    }
  }

  /** What late_dropped events added up to since the last call, per metric and hour; forgets it. */
  takeDropped(): DroppedValue[] {
    const out = [...this.#dropped.values()];
    this.#dropped.clear();
    return out;
  }

  /** Adds events in order and counts them by lateness. */
  addAll(rows: Iterable<MetricRow>, counts?: AddCounts): AddCounts {
    const c = counts ?? { on_time: 0, late_updated: 0, late_dropped: 0 };
    for (const r of rows) c[this.add(r)]++;
    return c;
  }

  /** Returns the changes since the last call and forgets them. */
  takeDeltas(): WindowDelta[] {
    const out: WindowDelta[] = [];
    for (const [start, accs] of this.#dirty) {
      for (const acc of accs) {
        if (acc.metric.aggregation === "count_distinct") {
          for (const [key, set] of acc.members) {
            out.push({ metric: acc.metric.name, windowStart: start, key, members: [...set] });
          }
        } else {
          for (const [key, value] of acc.values) {
            out.push({ metric: acc.metric.name, windowStart: start, key, value });
          }
        }
      }
    }
    this.#dirty.clear();
    return out;
  }

  /**
   * The stream went quiet: move the clock so the watermark reaches the end of
   * the newest window, which closes (writes) every open window. Returns false
   * when nothing was open.
   */
  closeIdle(): boolean {
    const target = this.#maxWindowEnd + this.options.allowedLatenessMs;
    if (!Number.isFinite(target) || target <= this.#clockMs) return false;
    this.#clockMs = target;
    return true;
  }
}
