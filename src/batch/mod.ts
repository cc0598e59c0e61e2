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
import { readHour as lakeReadHour } from "../lake/mod.ts";
import type { ObjectStore } from "../lake/mod.ts";
import { log as rootLog, type Logger } from "../log.ts";
import { UserError } from "../errors.ts";
import type { Registry } from "../metrics.ts";
import { upsertCatalog } from "./catalog.ts";
import { HourBusyError } from "./errors.ts";
import { checkHour, hourLabel } from "./hours.ts";
import { type HoursReport, hoursReport, type HoursSummary, hoursSummary } from "./hours_report.ts";
import { type HourReader, runJob } from "./job.ts";
import type { HourParticipant } from "./participant.ts";
import { engineFor, type EngineOptions } from "./spark/mod.ts";
import * as runs from "./runs.ts";
import { processHolder, type RunHolder } from "../holder.ts";
import { createScheduler } from "./scheduler.ts";
import { type BatchTelemetry, batchTelemetry } from "./telemetry.ts";
import type { ListRunsOptions, RunRecord, RunSummary, Trigger } from "./types.ts";

export type { ListRunsOptions, RunRecord, RunStatus, RunSummary, Trigger } from "./types.ts";
export { HourBusyError, UnknownDevicesError } from "./errors.ts";
export { hourLabel, hourRange, parseHour } from "./hours.ts";
export {
  batchSeriesSql,
  currentBatchHourlySql,
  notBatchedSql,
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
export type { HourReport, HoursReport, HoursSummary } from "./hours_report.ts";
export { type BatchTelemetry, batchTelemetry } from "./telemetry.ts";

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

export function createBatchRunner(deps: BatchRunnerDeps): BatchRunner {
  return new Runner(deps);
}

class Runner implements BatchRunner {
  #plan: Plan;
  readonly #d: BatchRunnerDeps;
  readonly #db: Db;
  readonly #log: Logger;
  readonly #clock: () => number;
  readonly #holder: RunHolder;
  readonly #telemetry: BatchTelemetry;
  /** One hour at a time in this process: every run joins the end of one queue. */
  readonly #serial = new Serial();
  /** Hours queued here and not finished. */
  readonly #pending = new Set<number>();
  #catalogued: Promise<void> | undefined;
  readonly #scheduler: ReturnType<typeof createScheduler>;

  constructor(deps: BatchRunnerDeps) {
    this.#d = deps;
    this.#plan = deps.plan;
    this.#db = deps.db;
    this.#log = deps.log ?? rootLog.child({ component: "batch" });
    this.#clock = deps.clock ?? Date.now;
    this.#holder = deps.holder ?? processHolder();
    this.#telemetry = batchTelemetry(deps.registry);
    const current = () => this.#plan;
    this.#scheduler = createScheduler({
      get plan() {
        return current();
      },
      db: deps.db,
      store: deps.store,
      log: this.#log,
      clock: this.#clock,
      run: (hour, trigger) => this.runHour(hour, trigger),
      pending: (h) => this.#pending.has(h),
      retryAfterMs: deps.retryAfterMs,
      telemetry: this.#telemetry,
    });
  }

  get plan(): Plan {
    return this.#plan;
  }

  applyPlan(next: Plan): void {
    this.#plan = next;
    this.#catalogued = undefined;
  }

  #lease(): number {
    return this.#d.leaseMs ?? this.#plan.batch.runLeaseMs;
  }

  /** What a run needs; each run takes the plan of the moment it starts. */
  #jobDeps() {
    const d = this.#d, plan = this.#plan;
    return {
      plan,
      db: d.db,
      store: d.store,
      log: this.#log,
      clock: this.#clock,
      leaseMs: this.#lease(),
      telemetry: this.#telemetry,
      readHour: d.readHour ?? lakeReadHour,
      participants: d.participants,
      engine: engineFor(plan, { db: d.db, ...d.engineOptions }),
      totalMemory: Deno.systemMemoryInfo().total,
    };
  }

  #catalog(): Promise<void> {
    return this.#catalogued ??= upsertCatalog(this.#db, this.#plan).catch((err) => {
      this.#catalogued = undefined;
      throw err;
    });
  }

  async runHour(hour: number, trigger: Trigger): Promise<RunSummary> {
    checkHour(hour);
    return await this.#serial.run(async () => {
      await this.#catalog();
      const runId = await runs.claimNew(this.#db, hour, trigger, this.#lease(), this.#holder);
      return await runJob(this.#jobDeps(), hour, runId, trigger);
    });
  }

  async submit(hours: number[], trigger: Trigger): Promise<{ runIds: string[] }> {
    const list = [...new Set(hours)].sort((a, b) => a - b);
    list.forEach(checkHour);
    if (list.length === 0) throw new UserError("no hour to run");
    for (const h of list) {
      if (this.#pending.has(h)) throw new HourBusyError(h);
      const running = await runs.isRunning(this.#db, h, this.#holder);
      if (running) throw new HourBusyError(h, running);
    }
    const runIds = await runs.enqueue(this.#db, list, trigger);
    list.forEach((h, i) => this.#queueRun(h, runIds[i], trigger));
    this.#log.info("batch runs queued", { trigger, hours: list.length, from: hourLabel(list[0]) });
    return { runIds };
  }

  /** Runs a queued run after the work ahead of it; its outcome is on the run. */
  #queueRun(h: number, runId: string, trigger: Trigger): void {
    this.#pending.add(h);
    this.#serial.run(async () => {
      try {
        await this.#catalog();
        await runs.claimQueued(this.#db, runId, h, this.#lease(), this.#holder);
        await runJob(this.#jobDeps(), h, runId, trigger);
      } finally {
        this.#pending.delete(h);
      }
    }).catch((error) => {
      const at = { hour: hourLabel(h), run_id: runId };
      if (error instanceof HourBusyError) this.#log.info("queued batch run refused: hour busy", at);
      else this.#log.error("queued batch run failed", { ...at, error });
    });
  }

  getRun(runId: string): Promise<RunRecord | undefined> {
    return runs.getRun(this.#db, runId);
  }

  listRuns(opts?: ListRunsOptions): Promise<RunRecord[]> {
    return runs.listRuns(this.#db, opts);
  }

  startScheduler(): { stop(): Promise<void>; wake(): void } {
    return this.#scheduler.start();
  }

  runDue(): Promise<RunSummary[]> {
    return this.#scheduler.tick();
  }

  lastCompletedHour(): Promise<number | undefined> {
    return runs.lastCompletedHour(this.#db);
  }

  hours(from: number, to: number): Promise<HoursReport> {
    return hoursReport(this.#db, this.#plan, this.#clock(), from, to);
  }

  hoursSummary(): Promise<HoursSummary> {
    return hoursSummary(this.#db, this.#plan, this.#telemetry);
  }

  idle(): Promise<void> {
    return this.#serial.idle();
  }
}
