/**
 * INTERIM (issue 11): the speed layer's live switch for as long as the layer
 * itself does not implement `applyPlan` (src/speed/plan_switch.ts, to be
 * filled in src/speed/layer.ts). It keeps the same contract by stopping the
 * layer and starting another on the new plan, in this process:
 *
 * 1. `stop()` flushes the lake and PostgreSQL and stops the source: every
 *    partition's stored next offset is now the first offset not applied, S_p.
 * 2. In one transaction holding those progress rows, every partition's
 *    switch record is written at S_p with its stored clock
 *    (`switchStoredPartitions`).
 * 3. A new source and a new layer start on the new plan; they resume from
 *    the stored offsets and clocks, exactly as after a clean restart.
 *
 * The cost is the pause: a consumer group rejoin on Kafka (seconds), well
 * under a second with the simulator. Once `SpeedLayer.applyPlan` exists,
 * `start` uses it and this file can go.
 */
import type { Db } from "../db/db.ts";
import type { EventSource } from "../kafka/mod.ts";
import type { Logger } from "../log.ts";
import type { Plan } from "../config/plan.ts";
import type { SpeedLayer, SpeedPlanSwitch, SpeedStatus, SpeedSwitchResult } from "../speed/mod.ts";
import { switchStoredPartitions } from "../backfill/mod.ts";

export interface SwitchingSpeedDeps {
  readonly db: Db;
  readonly topic: string;
  readonly log: Logger;
  /** Starts a speed layer on `plan` with a fresh source. */
  readonly start: (plan: Plan) => Promise<{ layer: SpeedLayer; source: EventSource }>;
}

/** The running speed layer, whichever it is, and the switch. */
export interface SwitchingSpeed {
  status(): SpeedStatus;
  readonly source: Pick<EventSource, "kind" | "lag">;
  applyPlan(s: SpeedPlanSwitch): Promise<SpeedSwitchResult>;
  stop(): Promise<void>;
  /** Resolves when the layer ends by itself (not at a switch) or is stopped. */
  readonly done: Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startSwitchingSpeed(
  deps: SwitchingSpeedDeps,
  plan: Plan,
): Promise<SwitchingSpeed> {
  let current = await deps.start(plan);
  let switching: Promise<unknown> = Promise.resolve();
  let stopped = false;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => resolveDone = r);
  const watch = (c: typeof current) => {
    c.layer.done.then(() => {
      if (c === current && !stopped && !inSwitch) resolveDone();
    });
  };
  let inSwitch = false;
  watch(current);

  async function switchTo(s: SpeedPlanSwitch): Promise<SpeedSwitchResult> {
    if (stopped) throw new Error("the speed layer is stopping");
    const inLayer = current.layer.applyPlan;
    if (inLayer) return await inLayer(s);
    inSwitch = true;
    try {
      const t0 = Date.now();
      await current.layer.stop();
      const offsets = await switchStoredPartitions(deps.db, deps.topic, (at) => s.switchWrite(at));
      for (let attempt = 1;; attempt++) {
        try {
          current = await deps.start(s.next);
          break;
        } catch (error) {
          // The switch is recorded: only the new plan may run now.
          deps.log.error("speed layer did not start on the new plan, retrying", { attempt, error });
          if (stopped) throw error;
          await sleep(Math.min(10_000, 500 * attempt));
        }
      }
      watch(current);
      deps.log.info("speed layer switched to the new plan (stopped and started again)", {
        switch_offsets: Object.fromEntries(offsets),
        pause_ms: Date.now() - t0,
      });
      return { switchOffsets: offsets };
    } finally {
      inSwitch = false;
    }
  }

  return {
    status: () => current.layer.status(),
    source: {
      get kind() {
        return current.source.kind;
      },
      lag: () => current.source.lag(),
    },
    applyPlan(s) {
      const run = switching.then(() => switchTo(s));
      switching = run.catch(() => {});
      return run;
    },
    async stop() {
      stopped = true;
      await switching;
      await current.layer.stop();
      resolveDone();
    },
    done,
  };
}
