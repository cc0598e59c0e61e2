/**
 * The seam of a live reload inside the speed layer (issue 11): what a reload
 * asks of the running layer, and what the layer promises. The reload
 * controller (src/runtime/controller.ts) calls `applyPlan` once the new file is
 * valid and every change in it is live; the backfill (src/backfill) relies on
 * the promises below to make a new metric's history meet its live windows
 * exactly at the switch.
 *
 * ## Contract of `applyPlan(s)`
 *
 * 1. **One switch offset per owned partition.** For each partition p it owns
 *    when called, the layer picks S_p between two batches of p: the first
 *    offset it has not applied, i.e. `max(next offset read, next offset
 *    stored)` (a partition replaying below its stored offset switches at the
 *    stored one). Every valid event of p below S_p is applied under the old
 *    plan, every one at or above S_p under `s.next`: never both, never
 *    neither.
 * 2. **The switch flush.** The layer flushes p with `nextOffset = S_p`: every
 *    delta, dead letter, late-dropped value and participant write taken
 *    under the old plan, as any flush, and, in the same transaction after
 *    them, `s.switchWrite({ partition: p, offset: S_p, clockMs })`
 *    (a `ParticipantWrite`; `clockMs` is p's event-time clock at S_p). So the
 *    switch is recorded exactly when the old plan's last rows are, and a
 *    crash either keeps both or neither. Faults are retried like any flush.
 * 3. **The clock carries over.** From S_p on, p's windows are a new
 *    `PartitionWindows` over the new plan's metrics with the same window
 *    options and the clock p had at S_p (and WrittenRows restarted from that
 *    clock: the backfill writes rows of added and changed metrics in windows
 *    up to it, which the layer must upsert, not insert). Never reset the
 *    clock: the backfill replays the lake from the beginning and reaches
 *    S_p with exactly this clock, which is what makes the two halves meet.
 * 4. **Metrics.** Added and changed metrics are computed from S_p with their
 *    new definitions; removed ones get no delta at or after S_p (their rows
 *    stay). `switchWrite` itself deletes what the backfill recomputes and
 *    declares the new plan's metrics in `speed_metrics`; the layer only uses
 *    the new plan's aggregations for deltas taken after S_p.
 * 5. **Settings.** The other live settings in `s.next` apply from the switch
 *    on: schema limits (validation), flush_interval, max_dirty_rows,
 *    idle_timeout, lake.roll (the lake writer) and lake.compaction. Keys that
 *    are restart-only never reach the layer changed (the controller refuses
 *    them).
 * 6. **Completion.** `applyPlan` resolves once the switch flush of every
 *    partition owned at the call has committed, with their switch offsets.
 *    A partition revoked before its switch flush is left out (its next owner
 *    starts it). A partition assigned during or after the call starts under
 *    `s.next` at its stored offset, and its first flush carries
 *    `s.switchWrite` at that offset too (the write is idempotent: a partition
 *    already switched to the same definitions is left as it is). It rejects
 *    only when it switched no partition (e.g. it is stopping); then nothing
 *    changed.
 */
import type { Plan } from "../config/plan.ts";
import type { ParticipantWrite } from "./participant.ts";

/** Where one partition switched. */
export interface PartitionSwitch {
  readonly partition: number;
  /** S_p: events below it under the old plan, from it under the new. */
  readonly offset: number;
  /** The partition's event-time clock at S_p, epoch ms (-Infinity before the first event). */
  readonly clockMs: number;
}

/** What a reload asks of the speed layer. */
export interface SpeedPlanSwitch {
  /** The plan to run from the switch offsets on. */
  readonly next: Plan;
  /** Names of speed metrics added, changed (definition) and removed. */
  readonly added: readonly string[];
  readonly changed: readonly string[];
  readonly removed: readonly string[];
  /** Other live keys of the layer that changed (for its log). */
  readonly settings: readonly string[];
  /** The switch record of one partition, run in its switch flush's transaction. */
  switchWrite(at: PartitionSwitch): ParticipantWrite;
}

/** What `applyPlan` resolves with. */
export interface SpeedSwitchResult {
  /** S_p of each partition switched. */
  readonly switchOffsets: ReadonlyMap<number, number>;
}

/** A speed layer that takes a new plan without a restart. */
export interface ReloadableSpeed {
  applyPlan(s: SpeedPlanSwitch): Promise<SpeedSwitchResult>;
}
