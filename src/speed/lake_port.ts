/**
 * What the speed layer needs from the lake (src/lake), as a small interface
 * that src/lake's `LakeWriter` satisfies: append a partition's valid events in
 * offset order, let the writer roll files by age, ask how far each partition
 * is durable, recover a partition before replaying it. Hour compaction is a
 * separate function of the lake, passed in beside it.
 */
import type { LakePlan } from "../config/plan.ts";
import type { SourcedEvent } from "../core/event.ts";

export interface SpeedLake {
  /** Buffers valid events of one partition (offset order); full segments are written in the background. */
  append(events: readonly SourcedEvent[]): void;
  /** Every message before `nextOffset` was consumed (dead letters never reach the lake). */
  advance(partition: number, nextOffset: number): void;
  /** Rolls segments that reached their maximum age. */
  tick(): void;
  /** Rolls what is buffered (one partition, or all) and waits until it is durable. */
  flush(partition?: number): Promise<void>;
  /** Waits for the writes in flight. */
  drain(partition?: number): Promise<void>;
  /** Rows buffered or being written, for backpressure. */
  pendingRows(partition?: number): number;
  /** Every event before this offset is durable (undefined before anything is known). */
  durableOffset(partition: number): number | undefined;
  /** Before consuming a partition from `resumeOffset`: removes files a crash left beyond it. */
  recover(partition: number, resumeOffset: number): Promise<void>;
  /** Kafka holds this commit: older crash-safety records can go. */
  markCommitted(partition: number, offset: number): void;
  /** Flushes a revoked partition and forgets it. */
  release(partition: number): Promise<void>;
  /** Rolls segments by these limits from now on (a live reload). */
  reconfigure?(roll: LakePlan["roll"]): void;
}

/** Merges one hour's small files of one Kafka partition into one file. */
export type CompactHour = (hourMs: number, partition: number) => Promise<void>;
