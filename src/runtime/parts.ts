/**
 * What each running part does with a new plan, in the order a reload applies
 * them (decided per part, as Vector's running topology does per component):
 * the speed layer's switch first (the one that can fail; it changes nothing
 * if it does), then the batch runner, the recorded definitions and queued
 * batch hours (which need the runner's new plan), the scheduler, and last
 * the generation's record (so a restart knows the plan it ran).
 */
import { retry } from "../async/retry.ts";
import { type BackfillWorker, recordApplied, switchPlanOf, switchWrite } from "../backfill/mod.ts";
import type { BatchRunner } from "../batch/mod.ts";
import type { Plan, PlanDiff } from "../config/mod.ts";
import type { Db } from "../db/db.ts";
import type { Logger } from "../log.ts";
import type { SpeedLayer } from "../speed/mod.ts";
import type { PlanPart } from "./controller.ts";
import { saveGeneration } from "./generation.ts";

/** How many times a definitions or generation write is tried before a reload fails. */
const WRITE_ATTEMPTS = 5;
/** The first wait between those attempts (then doubled): 0.4, 0.8, 1.6, 3.2 s. */
const WRITE_BACKOFF_MS = 400;

/** The batch scheduler, which runs only while `batch.enabled`: started and stopped by reloads. */
export class SchedulerSlot {
  #running?: { stop(): Promise<void>; wake(): void };
  constructor(private readonly batch: BatchRunner) {}

  get running(): boolean {
    return this.#running !== undefined;
  }
  start(): void {
    this.#running ??= this.batch.startScheduler();
  }
  async stop(): Promise<void> {
    const s = this.#running;
    this.#running = undefined;
    await s?.stop();
  }
  /** Looks for due hours now (the lake completed another hour, or a reload queued some). */
  wake(): void {
    this.#running?.wake();
  }
}

/** The running parts a reload reaches. */
export interface ReloadTargets {
  readonly topic: string;
  readonly db: Db;
  readonly log: Logger;
  /** Undefined while the speed layer starts, and when it is off. */
  readonly speed: () => SpeedLayer | undefined;
  readonly batch: BatchRunner;
  readonly backfill: BackfillWorker;
  readonly scheduler: SchedulerSlot;
}

/** The parts of a reload, in the order they apply a plan. */
export function reloadParts(t: ReloadTargets): PlanPart[] {
  const write = <T>(what: string, fn: () => Promise<T>) =>
    retry(fn, {
      maxAttempts: WRITE_ATTEMPTS,
      initialMs: WRITE_BACKOFF_MS,
      onError: (error, attempt, nextDelayMs) =>
        t.log.warn(`reload: ${what} failed, trying again`, { error, attempt, nextDelayMs }),
    });
  return [
    {
      name: "speed",
      async apply(next: Plan, diff: PlanDiff, gen) {
        const speed = t.speed();
        if (!speed || !diff.speedSwitch) return;
        const sp = switchPlanOf(t.topic, next, diff, Date.now(), gen.generation);
        const r = await speed.applyPlan({
          next,
          added: diff.speedMetrics.added.map((m) => m.name),
          changed: diff.speedMetrics.changed.map((m) => m.name),
          removed: diff.speedMetrics.removed,
          settings: diff.changes.filter((c) => c.applies?.[0] === "speed").map((c) => c.key),
          switchWrite: (at) => switchWrite(sp, at),
        });
        t.backfill.wake();
        return { switch_offsets: Object.fromEntries(r.switchOffsets) };
      },
    },
    {
      name: "batch",
      apply(next: Plan) {
        t.batch.applyPlan(next);
        return Promise.resolve();
      },
    },
    {
      name: "definitions",
      async apply(next: Plan, diff: PlanDiff) {
        const changes = {
          speed: diff.speedMetrics,
          batch: diff.batchMetrics,
          speedRecorded: next.speed.enabled,
        };
        const hours = await write(
          "recording the definitions",
          () => t.db.transaction((tx) => recordApplied(tx, t.topic, next, changes, Date.now())),
        );
        t.backfill.wake();
        return hours.length ? { batch_hours_queued: hours.length } : undefined;
      },
    },
    {
      name: "scheduler",
      async apply(next: Plan) {
        if (next.batch.enabled && !t.scheduler.running) t.scheduler.start();
        else if (!next.batch.enabled && t.scheduler.running) await t.scheduler.stop();
        else t.scheduler.wake();
      },
    },
    {
      name: "generation",
      async apply(_next: Plan, _diff: PlanDiff, gen) {
        await write(
          "recording the generation",
          () => saveGeneration(t.db, t.topic, gen.generation, gen.hash),
        );
      },
    },
  ];
}
