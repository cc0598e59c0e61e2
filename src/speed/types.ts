/**
 * The speed layer's contract with its callers: what `Layer` needs
 * (`LayerDeps`, assembled by mod.ts's `startSpeedLayer`) and what its
 * `status()` tells (`SpeedStatus`, read by the API's /ready and tests).
 */
import type { Plan } from "../config/plan.ts";
import type { Db } from "../db/db.ts";
import type { DeadLetterSink, EventSource } from "./source.ts";
import type { Logger } from "../log.ts";
import type { CompactHour, SpeedLake } from "./lake_port.ts";
import type { FlushParticipant } from "./participant.ts";
import type { PartitionStatus } from "./partition.ts";
import type { SpeedTelemetry } from "./telemetry.ts";

export type { PartitionStatus } from "./partition.ts";

export interface SpeedStatus {
  readonly running: boolean;
  /** Sinks currently failing (postgres, lake, dead-letter topic). */
  readonly sinksDown: readonly string[];
  readonly partitions: readonly PartitionStatus[];
  /** From the layer's telemetry (src/speed/telemetry.ts). */
  readonly counters: {
    readonly consumed: number;
    readonly valid: number;
    readonly deadLetters: number;
    readonly lateUpdated: number;
    readonly lateDropped: number;
    readonly windowsWritten: number;
    readonly flushes: number;
  };
}

export interface LayerDeps {
  readonly plan: Plan;
  readonly db: Db;
  readonly lake: SpeedLake;
  /** Hour compaction; undefined = off. */
  readonly compactHour?: CompactHour;
  /** Hours of a partition whose compaction a crash cut short (compacted again on assignment). */
  readonly unfinishedCompactions?: (partition: number) => Promise<number[]>;
  readonly source: EventSource;
  readonly deadLetters?: DeadLetterSink;
  readonly log: Logger;
  readonly clock: () => number;
  readonly topic: string;
  readonly telemetry: SpeedTelemetry;
  /** Called after a flush that made a partition's lake complete past another hour's end. */
  readonly onLakeHour?: () => void;
  /** Ride along the flushes (participant.ts). */
  readonly participants?: readonly FlushParticipant[];
}
