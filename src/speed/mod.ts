/**
 * Front door of the speed layer: `startSpeedLayer(deps)` consumes the source,
 * aggregates each metric of the plan in event-time windows per Kafka
 * partition, and writes partial rows (the `bytes` view), dead letters and
 * offsets to PostgreSQL, and every valid event to the Parquet lake, committing
 * to Kafka only what both hold durably. Run `migrate(db)` before.
 */
import type { Plan } from "../config/plan.ts";
import type { Db } from "../db/db.ts";
import type { DeadLetterSink, EventSource } from "./source.ts";
import { compactHour, LakeWriter, type ObjectStore, unfinishedCompactions } from "../lake/mod.ts";
import { log as rootLog, type Logger } from "../log.ts";
import type { Registry } from "../metrics.ts";
import type { CompactHour, SpeedLake } from "./lake_port.ts";
import { Layer } from "./layer.ts";
import type { SpeedStatus } from "./types.ts";
import type { FlushParticipant } from "./participant.ts";
import type { SpeedPlanSwitch, SpeedSwitchResult } from "./plan_switch.ts";
import { speedTelemetry } from "./telemetry.ts";

export type { PartitionStatus, SpeedStatus } from "./types.ts";
export type {
  DeadLetter,
  DeadLetterSink,
  EventSource,
  SourceBatch,
  SourceHandlers,
  SourceMessage,
} from "./source.ts";
export type { CompactHour, SpeedLake } from "./lake_port.ts";
export type { FlushParticipant, ParticipantWrite } from "./participant.ts";
export type {
  PartitionSwitch,
  ReloadableSpeed,
  SpeedPlanSwitch,
  SpeedSwitchResult,
} from "./plan_switch.ts";
export { type SpeedTelemetry, speedTelemetry } from "./telemetry.ts";
export { deadLetterCounts, type DeadLetterReason } from "./dead_letters.ts";
// The sink's writes a replay of the lake shares with the live layer (src/backfill).
export {
  type Aggregations,
  deleteMetricRows,
  intArray,
  type Progress,
  readProgress,
  textArray,
  TS,
  upsertMetrics,
  writeWindowDeltas,
} from "./sink.ts";

export interface SpeedDeps {
  readonly plan: Plan;
  readonly db: Db;
  /** The lake's store (`openStore(plan.lake)`). */
  readonly store: ObjectStore;
  readonly source: EventSource;
  /** Dead-letter topic writer; without one, dead letters go to PostgreSQL only. Not closed by stop(). */
  readonly deadLetters?: DeadLetterSink;
  /** Default: the process logger with `component: "speed"`. */
  readonly log?: Logger;
  /** Wall clock (validation's future bound, idle timeout, lake roll age). Default Date.now. */
  readonly clock?: () => number;
  /** Topic name recorded with offsets and dead letters. Default plan.source.kafka.topic. */
  readonly topic?: string;
  /** Default: the process registry. */
  readonly registry?: Registry;
  /** Overrides the lake writer built from `store` (tests). */
  readonly lake?: SpeedLake;
  /** Overrides hour compaction (default: src/lake's compactHour when compaction is enabled). */
  readonly compactHour?: CompactHour;
  /** Called after a flush that made a partition's lake complete past another hour (wake the batch scheduler). */
  readonly onLakeHour?: () => void;
  /** Ride along the flushes: see every applied event, write in its flush transaction. */
  readonly participants?: readonly FlushParticipant[];
}

export interface SpeedLayer {
  /** Flushes the lake and PostgreSQL, commits, stops the source; resolves within ~10 s. */
  stop(): Promise<void>;
  status(): SpeedStatus;
  /** Resolves once the layer has stopped. */
  readonly done: Promise<void>;
  /**
   * Switches the running layer to a new plan (a live reload) at a recorded
   * offset of each partition; the contract is in plan_switch.ts.
   */
  applyPlan(s: SpeedPlanSwitch): Promise<SpeedSwitchResult>;
}

/**
 * Starts the speed layer.
 *
 * @example
 * await migrate(db);
 * const speed = await startSpeedLayer({ plan, db, store: openStore(plan.lake), source });
 * Deno.addSignalListener("SIGTERM", () => speed.stop());
 */
export async function startSpeedLayer(deps: SpeedDeps): Promise<SpeedLayer> {
  const log = deps.log ?? rootLog.child({ component: "speed" });
  const clock = deps.clock ?? Date.now;
  const lake = deps.lake ??
    new LakeWriter({
      store: deps.store,
      roll: deps.plan.lake.roll,
      clock,
      log,
      registry: deps.registry,
    });
  const layer = new Layer({
    plan: deps.plan,
    db: deps.db,
    lake,
    compactHour: deps.compactHour ??
      (async (hour, partition) =>
        void await compactHour(deps.store, hour, partition, {
          copyMinAverageRows: deps.plan.lake.compaction.copyMinRows,
        })),
    unfinishedCompactions: (partition) => unfinishedCompactions(deps.store, partition),
    source: deps.source,
    deadLetters: deps.deadLetters,
    log,
    clock,
    topic: deps.topic ?? deps.plan.source.kafka.topic,
    telemetry: speedTelemetry(deps.registry),
    onLakeHour: deps.onLakeHour,
    participants: deps.participants,
  });
  await layer.start();
  return {
    stop: () => layer.stop(),
    status: () => layer.status(),
    applyPlan: (s) => layer.applyPlan(s),
    done: layer.done,
  };
}
