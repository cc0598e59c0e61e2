/**
 * The speed layer's side of the lake: every call to the lake writer goes
 * through one serial queue and is retried until it succeeds (the source is
 * paused meanwhile); a partition's batch waits while the lake has much more
 * than a segment in flight; finished hours are compacted one at a time, each
 * once its files are whole and recorded as durable.
 */
import { delay } from "../async/delay.ts";
import { Serial } from "../async/serial.ts";
import type { LakePlan } from "../config/plan.ts";
import type { Logger } from "../log.ts";
import type { CompactHour, SpeedLake } from "./lake_port.ts";
import { type RetryHooks, retrying } from "./retry.ts";

export interface LakeGateDeps {
  readonly lake: SpeedLake;
  readonly plan: LakePlan;
  readonly compactHour?: CompactHour;
  readonly hooks: RetryHooks;
  readonly log: Logger;
  /** Writes everything the layer holds to PostgreSQL (so the lake offsets are recorded). */
  readonly flushNow: () => Promise<void>;
  /** True once the layer is stopping: waits end, no new compaction starts. */
  readonly stopping: () => boolean;
  /** Hours of a partition whose compaction a crash cut short. */
  readonly unfinished?: (partition: number) => Promise<number[]>;
}

export class LakeGate {
  readonly #d: LakeGateDeps;
  /** The lake settings running now (a live reload replaces them). */
  plan: LakePlan;
  readonly #calls = new Serial();
  readonly #compactions = new Serial();

  constructor(deps: LakeGateDeps) {
    this.#d = deps;
    this.plan = deps.plan;
  }

  /** Whether hours are compacted at all. */
  get compacting(): boolean {
    return this.plan.compaction.enabled && this.#d.compactHour !== undefined;
  }

  /** Runs a lake call after the ones before it, retrying its faults. */
  run<T>(sink: string, fn: () => Promise<T>): Promise<T> {
    return this.#calls.run(() => retrying(sink, this.#d.hooks, fn));
  }

  /**
   * Holds the batch while the lake has much more than a segment in flight: the
   * store is slow or down (the writer retries on its own). The source is
   * paused meanwhile, so consumption resumes only when files are written.
   */
  async backpressure(partition: number): Promise<void> {
    const { lake, hooks, log } = this.#d;
    // One segment being written plus a full open one; more means the store is behind.
    const limit = 2 * this.plan.roll.maxRows + 20_000;
    if (lake.pendingRows(partition) <= limit) return;
    const t0 = Date.now();
    let paused = false;
    while (lake.pendingRows(partition) > limit && !this.#d.stopping()) {
      if (!paused && Date.now() - t0 > 1_000) {
        paused = true;
        hooks.onDown("lake");
        log.warn("lake unavailable, retrying", { partition, pending: lake.pendingRows(partition) });
      }
      await delay(50);
    }
    if (paused) {
      log.info("lake resumed", { partition });
      hooks.onUp("lake");
    }
  }

  /** Queues the compaction of one partition's hour. */
  /**
   * A partition was assigned: the lake writer recovers it from its resume
   * offset, and hours whose compaction a crash cut short are compacted again.
   */
  async assigned(partition: number, resumeOffset: number): Promise<void> {
    const d = this.#d;
    await this.run("lake", () => d.lake.recover(partition, resumeOffset));
    const unfinished = d.unfinished;
    if (!unfinished || !this.compacting) return;
    for (const hour of await retrying("lake", d.hooks, () => unfinished(partition))) {
      d.log.info("lake compaction cut short by a crash: compacting again", {
        hour: new Date(hour).toISOString(),
        partition,
      });
      this.compact(hour, partition);
    }
  }

  compact(hour: number, partition: number): void {
    const { lake, log } = this.#d;
    const compact = this.#d.compactHour;
    if (!compact) return;
    this.#compactions.run(async () => {
      if (this.#d.stopping()) return;
      // Files of the hour must be whole, and recorded as durable in the
      // progress (so no restart replays into them), before they are merged.
      await this.run("lake", () => lake.flush(partition));
      await this.#d.flushNow();
      await this.run("lake", () => compact(hour, partition));
      log.info("lake hour compacted", { hour: new Date(hour).toISOString(), partition });
    }).catch((error) => {
      log.error("lake compaction failed", { hour, partition, error });
    });
  }

  /** Resolves when the queued compactions are done. */
  compacted(): Promise<void> {
    return this.#compactions.idle();
  }
}
