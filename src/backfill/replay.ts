/**
 * The pure half of a backfill: replaying one partition's lake events, in
 * offset order, through the speed layer's own window state, and where a
 * switch's replay starts. No I/O.
 *
 * Why a replay gives exactly the windows the metric would have had live: the
 * live layer's decision for an event (which window, on time, late-updated or
 * dropped) depends only on the event and on the partition's clock, the
 * highest event time among the valid events before it, and the lake holds
 * every valid event with its offset. Replaying the lake in offset order from
 * the first offset through a `PartitionWindows` reproduces that clock at
 * every offset, hence every decision, up to the switch offset S, where the
 * live layer takes over with the same clock (plan_switch.ts, rule 3).
 *
 * A replay need not start at the lake's first hour. To recompute windows
 * from hour C on, it reads only the hour folders from C on and starts with
 * no clock: let o be the lowest offset of an event at or after C. Every event
 * below o is before C, so the live clock at o is below C, and the event at o
 * (at or after C) is on time whatever that clock was, then raises the clock
 * to at least C. From there, events before C can no longer raise the clock,
 * so the live clock at every later offset is the highest time among the
 * events at or after C seen since o: what the replay's clock is. Their
 * windows (before C) are left out, and windows from C on get every one of
 * their events (all at or after o).
 *
 * The one live decision a replay cannot see is wall-clock idleness: a
 * partition quiet for `speed.idle_timeout` has its open windows closed, which
 * moves its clock; an event arriving after that for an earlier window is
 * late for the live layer and on time for a replay. It takes a partition
 * that went quiet and then got events older than its newest window.
 */
import type { CompiledMetric, MetricRow } from "../core/metric.ts";
import {
  type AddCounts,
  type DroppedValue,
  PartitionWindows,
  type WindowDelta,
  type WindowOptions,
} from "../core/partition_windows.ts";
import { HOUR_MS, hourStart } from "../core/window.ts";

/** Windows starting in [fromMs, untilMs) are written; -Infinity / Infinity: no bound. */
export interface WindowRange {
  readonly fromMs: number;
  readonly untilMs: number;
}

/** One partition's replay through some metrics, keeping what falls in a range of windows. */
export class PartitionReplay {
  readonly #windows: PartitionWindows;
  readonly counts: AddCounts = { on_time: 0, late_updated: 0, late_dropped: 0 };

  constructor(
    metrics: readonly CompiledMetric[],
    options: WindowOptions,
    readonly range: WindowRange,
    /** The replay's clock where it resumes; -Infinity at its start. */
    clockMs = -Infinity,
  ) {
    this.#windows = new PartitionWindows(metrics, options, clockMs);
  }

  /** The replay's event-time clock (highest event time seen), epoch ms. */
  get clockMs(): number {
    return this.#windows.clockMs;
  }

  /** Adds the next event of the partition (offset order). */
  add(row: MetricRow): void {
    this.counts[this.#windows.add(row)]++;
  }

  /** The deltas and late-dropped values in range since the last take. */
  take(): { deltas: WindowDelta[]; dropped: DroppedValue[] } {
    const { fromMs, untilMs } = this.range;
    const inRange = (t: number) => t >= fromMs && t < untilMs;
    return {
      deltas: this.#windows.takeDeltas().filter((d) => inRange(d.windowStart)),
      dropped: this.#windows.takeDropped().filter((d) => inRange(d.hourMs)),
    };
  }
}

export interface SwitchFromOptions {
  /** Wall clock at the reload, epoch ms. */
  readonly nowMs: number;
  /** `speed.backfill_hours`: undefined = every hour of the lake, 0 = no backfill. */
  readonly backfillHours?: number;
  /** The partition's clock at its switch offset (-Infinity: no event yet). */
  readonly clockMs: number;
  readonly windowMs: number;
  readonly allowedLatenessMs: number;
}

/**
 * The first window a switch's backfill recomputes in one partition, or
 * undefined for none. It is the start of the hour `backfill_hours` back, or
 * earlier if the partition's clock is behind the wall clock (catching up a
 * backlog): every window the live layer can still change after the switch
 * (those ending after clock − 2 × lateness) must be recomputed too, or it
 * would hold only the events from the switch on.
 *
 * @example switchFrom({ nowMs, backfillHours: 24, clockMs: nowMs, windowMs: 300_000, allowedLatenessMs: 15_000 })
 * // hourStart(nowMs) - 24 h
 */
export function switchFrom(o: SwitchFromOptions): number | undefined {
  if (o.backfillHours === 0) return undefined;
  if (o.backfillHours === undefined) return -Infinity;
  const horizon = hourStart(o.nowMs) - o.backfillHours * HOUR_MS;
  if (!Number.isFinite(o.clockMs)) return horizon;
  return Math.min(horizon, hourStart(o.clockMs - o.windowMs - 2 * o.allowedLatenessMs));
}
