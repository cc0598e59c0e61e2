/**
 * Front door of the batch layer. `createBatchRunner` gives the scheduler, the
 * CLI and the API one code path to run hours: every run claims its hour in
 * batch_runs (one running run per hour, across processes), goes through one
 * serial in-process queue (never two hours at once here), and records its
 * outcome in the run history.
 *
 * @example
 * const runner = createBatchRunner({ plan, db, store });
 * const summary = await runner.runHour(Date.UTC(2026, 10, 28, 10), "manual");
 * const { runIds } = await runner.submit([h1, h2], "api"); // returns at once
 */
import { Serial } from "../async/serial.ts";
import type { Plan } from "../config/plan.ts";
import type { Db } from "../db/db.ts";
import { HOUR_MS } from "../core/window.ts";
import { readHour as lakeReadHour } from "../lake/mod.ts";
import type { ObjectStore } from "../lake/mod.ts";
import { log as rootLog, type Logger } from "../log.ts";
import { UserError } from "../errors.ts";
import type { Registry } from "../metrics.ts";
import { upsertCatalog } from "./catalog.ts";
import { HourBusyError } from "./errors.ts";
import {
  type BatchRule,
  type Completeness,
  type HourState,
  hourState,
  readBatchedHours,
  readRule,
  readStaleHours,
} from "./hour_state.ts";
import { hourLabel, hourRange } from "./hours.ts";
import { type HourReader, runJob } from "./job.ts";
import type { HourParticipant } from "./participant.ts";
import { engineFor, type EngineOptions } from "./spark/mod.ts";
import * as runs from "./runs.ts";
import { processHolder, type RunHolder } from "../holder.ts";
import { createScheduler } from "./scheduler.ts";
import { batchTelemetry } from "./telemetry.ts";
import type { ListRunsOptions, RunRecord, RunSummary, Trigger } from "./types.ts";

export type { ListRunsOptions, RunRecord, RunStatus, RunSummary, Trigger } from "./types.ts";
export { HourBusyError, UnknownDevicesError } from "./errors.ts";
export { hourLabel, hourRange, parseHour } from "./hours.ts";
export {
  batchSeriesSql,
  type Breach,
  currentBatchHourlySql,
  notBatchedSql,
  readBreaches,
  readReconciliation,
  type ReconciliationRow,
} from "./read.ts";
export type { HourReader } from "./job.ts";
// The batch tables a backfill writes or clears: its hours to run again, a dropped metric's rows.
export {
  batchedHoursFrom,
  finishRedoHour,
  nextRedoHour,
  queueRedoHours,
  redoHourCounts,
} from "./redo_hours.ts";
export { batchMetricKnown, dropBatchMetric } from "./write.ts";
export type { HourParticipant, HourTotals, HourWrite } from "./participant.ts";
export type { BatchRule, Completeness, HourState, PartitionCompleteness } from "./hour_state.ts";
export { type BatchTelemetry, batchTelemetry } from "./telemetry.ts";

/** One hour as `GET /api/v1/hours` shows it. */
export interface HourReport {
  readonly hour: number;
  readonly state: HourState;
  /** The first lake change the hour's batch has not seen (stale hours). */
  readonly staleSince?: number;
  readonly lastRun?: RunRecord;
}

/** Each hour of a range, and what decides when an hour is batched. */
export interface HoursReport {
  /** `completeness` when this pipeline's speed layer writes the lake, else `wall_clock`. */
  readonly rule: BatchRule;
  /** The lake's completeness (rule `completeness` only). */
  readonly completeness?: Completeness;
  readonly hours: readonly HourReport[];
}

/** What `/ready` and `/metrics` say about the batch layer's hours. */
export interface HoursSummary {
  readonly rule: BatchRule;
  readonly oldestIncompleteHour?: number;
  readonly staleHours: number;
}

export interface BatchRunnerDeps {
  plan: Plan;
  db: Db;
  store: ObjectStore;
  /** Default: the process logger with `component: "batch"`. */
  log?: Logger;
  /** Wall clock, epoch ms; the scheduler's idea of now. Default `Date.now`. */
  clock?: () => number;
  /** Lake reader. Default: the lake module's `readHour`. */
  readHour?: HourReader;
  /** How long a running run holds its hour without renewal. Default `batch.run_lease`. */
  leaseMs?: number;
  /** Scheduler: wait before retrying a failed hour. Default 15 minutes. */
  retryAfterMs?: number;
  /** Default: the process registry. */
  registry?: Registry;
  /** Who runs this runner's runs. Default: this process (host:pid). */
  holder?: RunHolder;
  /** Ride along each hour's write transaction (participant.ts), e.g. quota alert confirmation. */
  participants?: readonly HourParticipant[];
  /** How `batch.engine: spark` reaches its cluster (e.g. Dataproc's token). Default: from the plan and the environment. */
  engineOptions?: EngineOptions;
}

export interface BatchRunner {
  /** Runs one hour now (after queued work); throws `HourBusyError` if it runs elsewhere. */
  runHour(hourMs: number, trigger: Trigger): Promise<RunSummary>;
  /** Queues hours (oldest first) and returns their run ids at once; throws `HourBusyError` if one is busy. */
  submit(hours: number[], trigger: Trigger): Promise<{ runIds: string[] }>;
  getRun(runId: string): Promise<RunRecord | undefined>;
  listRuns(opts?: ListRunsOptions): Promise<RunRecord[]>;
  /**
   * Starts the hourly schedule (with catch-up); `stop()` waits for the
   * current pass, `wake()` runs a pass now (the lake completed an hour).
   */
  startScheduler(): { stop(): Promise<void>; wake(): void };
  /** One scheduler pass now: runs every due hour, oldest first. */
  runDue(): Promise<RunSummary[]>;
  /** Start of the newest hour the batch layer completed. */
  lastCompletedHour(): Promise<number | undefined>;
  /** The state of each hour in [from, to] (hour starts, both included). */
  hours(from: number, to: number): Promise<HoursReport>;
  /** The oldest incomplete hour and how many hours are stale. */
  hoursSummary(): Promise<HoursSummary>;
  /** Resolves when every queued run has finished. */
  idle(): Promise<void>;
  /** The plan runs use. */
  readonly plan: Plan;
  /**
   * Takes a new plan (a reload): runs that start from now on use it (batch
   * metrics, quota, unknown-device policy), the scheduler's next pass uses
   * its schedule settings; a run in flight finishes under the plan it began with.
   */
  applyPlan(next: Plan): void;
}

function checkHour(hour: number): void {
  if (!Number.isSafeInteger(hour) || hour % HOUR_MS !== 0) {
    throw new UserError(`hour ${hour} is not the start of a UTC hour in epoch ms`);
  }
}

export function createBatchRunner(deps: BatchRunnerDeps): BatchRunner {
  const { db, store } = deps;
  let plan = deps.plan;
  const log = deps.log ?? rootLog.child({ component: "batch" });
  const clock = deps.clock ?? Date.now;
  const lease = () => deps.leaseMs ?? plan.batch.runLeaseMs;
  const holder = deps.holder ?? processHolder();
  const telemetry = batchTelemetry(deps.registry);
  const readHour = deps.readHour ?? lakeReadHour;
  // Each run takes the plan of the moment it starts.
  const jobDeps = () => ({
    plan,
    db,
    store,
    log,
    clock,
    leaseMs: lease(),
    telemetry,
    readHour,
    participants: deps.participants,
    engine: engineFor(plan, deps.engineOptions),
  });
  // One hour at a time in this process: every run joins the end of one queue.
  const serial = new Serial();
  const pending = new Set<number>();
  let catalogued: Promise<void> | undefined;
  const catalog = () => (catalogued ??= upsertCatalog(db, plan).catch((err) => {
    catalogued = undefined;
    throw err;
  }));

  const runHour = async (hour: number, trigger: Trigger): Promise<RunSummary> => {
    checkHour(hour);
    return await serial.run(async () => {
      await catalog();
      const runId = await runs.claimNew(db, hour, trigger, lease(), holder);
      return await runJob(jobDeps(), hour, runId, trigger);
    });
  };

  async function submit(hours: number[], trigger: Trigger): Promise<{ runIds: string[] }> {
    const list = [...new Set(hours)].sort((a, b) => a - b);
    list.forEach(checkHour);
    if (list.length === 0) throw new UserError("no hour to run");
    for (const h of list) {
      if (pending.has(h)) throw new HourBusyError(h);
      const running = await runs.isRunning(db, h, holder);
      if (running) throw new HourBusyError(h, running);
    }
    const runIds = await runs.enqueue(db, list, trigger);
    list.forEach((h, i) => {
      pending.add(h);
      const runId = runIds[i];
      serial.run(async () => {
        try {
          await catalog();
          await runs.claimQueued(db, runId, h, lease(), holder);
          await runJob(jobDeps(), h, runId, trigger);
        } finally {
          pending.delete(h);
        }
      }).catch((err) => {
        if (err instanceof HourBusyError) {
          log.info("queued batch run refused: hour busy", { hour: hourLabel(h), run_id: runId });
        } else {log.error("queued batch run failed", {
            hour: hourLabel(h),
            run_id: runId,
            error: err,
          });}
      });
    });
    log.info("batch runs queued", { trigger, hours: list.length, from: hourLabel(list[0]) });
    return { runIds };
  }

  const scheduler = createScheduler({
    get plan() {
      return plan;
    },
    db,
    store,
    log,
    clock,
    run: runHour,
    pending: (h) => pending.has(h),
    retryAfterMs: deps.retryAfterMs,
    telemetry,
  });
  async function hours(from: number, to: number): Promise<HoursReport> {
    checkHour(from);
    checkHour(to);
    const [{ rule, completeness, firstDataHour }, batched, last] = await Promise.all([
      readRule(db, plan),
      readBatchedHours(db, from, to),
      runs.lastRuns(db, from, to),
    ]);
    const byHour = new Map(batched.map((b) => [b.hour, b]));
    const lastByHour = new Map(last.map((r) => [r.hour, r]));
    const when = {
      completeMs: completeness?.completeMs,
      allowedLatenessMs: plan.speed.allowedLatenessMs,
      nowMs: clock(),
      graceMs: plan.batch.graceMs,
      firstDataHour,
    };
    return {
      rule,
      completeness,
      hours: hourRange(from, to).map((hour) => {
        const b = byHour.get(hour);
        return {
          hour,
          state: hourState(hour, b, when),
          staleSince: b?.stale ? b.staleSince : undefined,
          lastRun: lastByHour.get(hour),
        };
      }),
    };
  }

  async function hoursSummary(): Promise<HoursSummary> {
    const [{ rule, completeness }, stale] = await Promise.all([
      readRule(db, plan),
      readStaleHours(db),
    ]);
    telemetry.staleHours.set(stale.length);
    const oldest = completeness?.oldestIncompleteHour;
    if (completeness) telemetry.oldestIncompleteHour.set((oldest ?? 0) / 1000);
    return { rule, oldestIncompleteHour: oldest, staleHours: stale.length };
  }

  return {
    runHour,
    submit,
    getRun: (runId) => runs.getRun(db, runId),
    listRuns: (opts) => runs.listRuns(db, opts),
    startScheduler: () => scheduler.start(),
    runDue: () => scheduler.tick(),
    lastCompletedHour: () => runs.lastCompletedHour(db),
    hours,
    hoursSummary,
    idle: () => serial.idle(),
    get plan() {
      return plan;
    },
    applyPlan(next: Plan) {
      plan = next;
      catalogued = undefined;
    },
  };
}
