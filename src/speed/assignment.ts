/**
 * The speed layer's side of a rebalance. An assigned partition starts from
 * its stored progress (the offsets, clocks and windows PostgreSQL holds), so
 * whatever it consumed before and did not store is replayed; the lake writer
 * recovers it from the same offset. A revoked partition is flushed (lake
 * first, then PostgreSQL) before it is let go, so its next owner resumes
 * exactly where this one stopped.
 */
import type { Plan } from "../config/plan.ts";
import type { CompiledMetric } from "../core/metric.ts";
import type { LakeGate } from "./lake_gate.ts";
import type { FlushParticipant } from "./participant.ts";
import { SpeedPartition } from "./partition.ts";
import { type RetryHooks, retrying } from "./retry.ts";
import { readProgress } from "./sink.ts";
import type { SwitchRecords } from "./switch_records.ts";
import type { LayerDeps } from "./types.ts";

/** What assignment needs of the layer, as it is at the moment of the rebalance. */
export interface Assignment {
  readonly d: LayerDeps;
  readonly hooks: RetryHooks;
  readonly lake: LakeGate;
  readonly parts: Map<number, SpeedPartition>;
  readonly switches: SwitchRecords;
  readonly participants: readonly FlushParticipant[];
  readonly plan: Plan;
  readonly metrics: CompiledMetric[];
  flushNow(): Promise<void>;
}

/** Takes `partitions`; resolves with the offset to resume each one with stored progress from. */
export async function assignPartitions(
  a: Assignment,
  partitions: readonly number[],
): Promise<Map<number, number>> {
  const d = a.d;
  const progress = await retrying(
    "postgres",
    a.hooks,
    () => readProgress(d.db, d.topic, partitions),
  );
  const starts = new Map<number, number>();
  const opts = {
    windowMs: a.plan.speed.windowMs,
    allowedLatenessMs: a.plan.speed.allowedLatenessMs,
  };
  for (const p of partitions) {
    const pr = progress.get(p);
    const st = new SpeedPartition(p, a.metrics, opts, pr, d.clock());
    a.switches.assigned(st);
    // Without progress nothing of this partition was applied yet: whatever
    // the lake holds beyond the last commit is an orphan, replayed anyway.
    if (pr) starts.set(p, st.resumeOffset);
    await a.lake.assigned(p, st.resumeOffset);
    a.parts.set(p, st);
  }
  d.log.info("speed partitions assigned", { partitions, starts: Object.fromEntries(starts) });
  return starts;
}

/** Lets `partitions` go once what they hold is durable in the lake and PostgreSQL. */
export async function revokePartitions(
  a: Assignment,
  partitions: readonly number[],
): Promise<void> {
  const d = a.d;
  const mine = partitions.filter((p) => a.parts.has(p));
  if (mine.length === 0) return;
  for (const p of mine) await a.lake.run("lake", () => d.lake.flush(p));
  await a.flushNow();
  for (const p of mine) {
    a.parts.delete(p);
    for (const x of a.participants) x.release?.(p);
    await a.lake.run("lake", () => d.lake.release(p));
  }
  d.log.info("speed partitions revoked", { partitions: mine });
}
