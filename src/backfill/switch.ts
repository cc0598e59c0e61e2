/**
 * The record of a switch: what a partition's switch flush writes (through
 * the speed layer, plan_switch.ts) or what a start writes before the speed
 * layer runs, so that a speed metric added or changed from offset S on gets
 * its windows below S recomputed from the lake. For each such metric, in the
 * partition's transaction: the rows the backfill will recompute are deleted
 * (a changed metric's windows held the old definition's values, and from
 * here on only the new one's live values are added), and a backfill row
 * records S, the first window recomputed and the definition. A removed
 * metric's backfill stops; its rows stay. The new plan's metrics are declared
 * in `speed_metrics` (a changed aggregation combines differently).
 *
 * The write is idempotent: a partition whose backfill row already has the
 * same definition was switched to it before (a retried transaction, a
 * partition assigned again) and is left alone.
 */
import type { MetricPlan, Plan } from "../config/plan.ts";
import { definitionHash } from "../config/hash.ts";
import type { Db, Queryable } from "../db/db.ts";
import {
  deleteMetricRows,
  lockProgressPartitions,
  type ParticipantWrite,
  type PartitionSwitch,
  readProgress,
  upsertMetrics,
} from "../speed/mod.ts";
import { switchFrom } from "./replay.ts";
import { deleteRow, lockRow, putRow } from "./store.ts";

/** What one switch recomputes and stops, for every partition it reaches. */
export interface SwitchPlan {
  readonly topic: string;
  /** The plan from the switch on. */
  readonly next: Plan;
  /** Metrics whose windows below the switch are recomputed. */
  readonly jobs: readonly { metric: MetricPlan; reason: "added" | "changed" }[];
  /** Metrics no longer computed: their backfill stops. */
  readonly removed: readonly string[];
  /** Wall clock of the reload (backfill_hours counts back from it). */
  readonly nowMs: number;
  readonly generation?: number;
}

/**
 * The switch record of one partition, as the `ParticipantWrite` its switch
 * flush runs (after the old plan's rows and the switch offset).
 */
export function switchWrite(sp: SwitchPlan, at: PartitionSwitch): ParticipantWrite {
  return { write: async (tx) => void await recordSwitch(tx, sp, at) };
}

/** Records the switch of one partition inside `tx`; returns the metrics it started backfills for. */
export async function recordSwitch(
  tx: Queryable,
  sp: SwitchPlan,
  at: PartitionSwitch,
): Promise<string[]> {
  const { speed } = sp.next;
  await upsertMetrics(tx, speed);
  for (const name of sp.removed) await deleteRow(tx, sp.topic, name, at.partition);
  const started: string[] = [];
  for (const job of sp.jobs) {
    const hash = definitionHash(job.metric);
    const row = await lockRow(tx, sp.topic, job.metric.name, at.partition);
    if (row?.hash === hash) continue;
    const from = switchFrom({
      nowMs: sp.nowMs,
      backfillHours: speed.backfillHours,
      clockMs: at.clockMs,
      windowMs: speed.windowMs,
      allowedLatenessMs: speed.allowedLatenessMs,
    });
    if (from === undefined) {
      // backfill_hours: 0: the metric starts at the switch, a changed one keeps its past rows.
      if (row) await deleteRow(tx, sp.topic, job.metric.name, at.partition);
      continue;
    }
    await deleteMetricRows(tx, sp.topic, job.metric.name, at.partition, from, Infinity);
    await putRow(tx, {
      topic: sp.topic,
      metric: job.metric,
      partition: at.partition,
      hash,
      reason: job.reason,
      stopOffset: at.offset,
      fromMs: from,
      untilMs: Infinity,
      generation: sp.generation,
    });
    started.push(job.metric.name);
  }
  return started;
}

/**
 * Switches every partition with recorded progress at its stored next offset,
 * in one transaction: what a start does for an edit made while the pipeline
 * was down (the speed layer will apply the new plan from exactly those
 * offsets), and how a switch is made while no speed layer of this process
 * writes the partitions. Returns the switch offsets.
 */
export async function switchAtStoredOffsets(
  db: Db,
  sp: SwitchPlan,
  /** More writes in the same transaction (the definitions applied). */
  also?: (tx: Queryable) => Promise<void>,
): Promise<Map<number, number>> {
  return await switchStoredPartitions(db, sp.topic, (at) => switchWrite(sp, at), async (tx) => {
    await upsertMetrics(tx, sp.next.speed);
    await also?.(tx);
  });
}

/**
 * Runs `write` for every partition of `topic` with stored progress, at its
 * stored next offset and clock, in one transaction holding their progress
 * rows (no flush commits meanwhile). For when no speed layer of this process
 * writes those partitions: before one starts, or between two.
 */
export async function switchStoredPartitions(
  db: Db,
  topic: string,
  write: (at: PartitionSwitch) => ParticipantWrite,
  also?: (tx: Queryable) => Promise<void>,
): Promise<Map<number, number>> {
  return await db.transaction(async (tx) => {
    const parts = await lockProgressPartitions(tx, topic);
    const progress = await readProgress(tx, topic, parts);
    const offsets = new Map<number, number>();
    for (const [partition, pr] of [...progress].sort((a, b) => a[0] - b[0])) {
      await write({ partition, offset: pr.nextOffset, clockMs: pr.clockMs }).write(tx);
      offsets.set(partition, pr.nextOffset);
    }
    await also?.(tx);
    return offsets;
  });
}
