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
import type { Plan } from "../config/plan.ts";
import type { Db } from "../db/db.ts";
import { HOUR_MS } from "../core/window.ts";
import { readHour as lakeReadHour } from "../lake/mod.ts";
import type { ObjectStore } from "../lake/mod.ts";
import { log as rootLog, type Logger } from "../log.ts";
import { UserError } from "../errors.ts";
import { upsertCatalog } from "./catalog.ts";
import { HourBusyError } from "./errors.ts";
import { hourLabel } from "./hours.ts";
import { type HourReader, runJob } from "./job.ts";
import * as runs from "./runs.ts";
import { createScheduler } from "./scheduler.ts";
import type { ListRunsOptions, RunRecord, RunSummary, Trigger } from "./types.ts";

export type { ListRunsOptions, RunRecord, RunStatus, RunSummary, Trigger } from "./types.ts";
export { HourBusyError, UnknownDevicesError } from "./errors.ts";
export { hourLabel, hourRange, parseHour } from "./hours.ts";
export type { HourReader } from "./job.ts";

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
  /** How long a running run holds its hour without renewal. Default 5 minutes. */
  leaseMs?: number;
  /** Scheduler: wait before retrying a failed hour. Default 15 minutes. */
  retryAfterMs?: number;
}

export interface BatchRunner {
  /** Runs one hour now (after queued work); throws `HourBusyError` if it runs elsewhere. */
  runHour(hourMs: number, trigger: Trigger): Promise<RunSummary>;
  /** Queues hours (oldest first) and returns their run ids at once; throws `HourBusyError` if one is busy. */
  submit(hours: number[], trigger: Trigger): Promise<{ runIds: string[] }>;
  getRun(runId: string): Promise<RunRecord | undefined>;
  listRuns(opts?: ListRunsOptions): Promise<RunRecord[]>;
  /** Starts the hourly schedule (with catch-up); `stop()` waits for the current pass. */
  startScheduler(): { stop(): Promise<void> };
  /** One scheduler pass now: runs every due hour, oldest first. */
  runDue(): Promise<RunSummary[]>;
  /** Start of the newest hour the batch layer completed. */
  lastCompletedHour(): Promise<number | undefined>;
  /** Resolves when every queued run has finished. */
  idle(): Promise<void>;
}

function checkHour(hour: number): void {
  if (!Number.isSafeInteger(hour) || hour % HOUR_MS !== 0) {
    throw new UserError(`hour ${hour} is not the start of a UTC hour in epoch ms`);
  }
}

export function createBatchRunner(deps: BatchRunnerDeps): BatchRunner {
  const { plan, db, store } = deps;
  const log = deps.log ?? rootLog.child({ component: "batch" });
  const clock = deps.clock ?? Date.now;
  const leaseMs = deps.leaseMs ?? 5 * 60_000;
  const jobDeps = {
    plan,
    db,
    store,
    log,
    clock,
    leaseMs,
    readHour: deps.readHour ?? lakeReadHour,
  };
  // One hour at a time in this process: a chain every run joins at its end.
  let tail: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const p = tail.then(fn);
    tail = p.catch(() => {});
    return p;
  };
  const pending = new Set<number>();
  let catalogued: Promise<void> | undefined;
  const catalog = () => (catalogued ??= upsertCatalog(db, plan).catch((err) => {
    catalogued = undefined;
    throw err;
  }));

  const runHour = async (hour: number, trigger: Trigger): Promise<RunSummary> => {
    checkHour(hour);
    return await serial(async () => {
      await catalog();
      const runId = await runs.claimNew(db, hour, trigger, leaseMs);
      return await runJob(jobDeps, hour, runId, trigger);
    });
  };

  async function submit(hours: number[], trigger: Trigger): Promise<{ runIds: string[] }> {
    const list = [...new Set(hours)].sort((a, b) => a - b);
    list.forEach(checkHour);
    if (list.length === 0) throw new UserError("no hour to run");
    for (const h of list) {
      if (pending.has(h)) throw new HourBusyError(h);
      const holder = await runs.isRunning(db, h);
      if (holder) throw new HourBusyError(h, holder);
    }
    const runIds = await runs.enqueue(db, list, trigger);
    list.forEach((h, i) => {
      pending.add(h);
      const runId = runIds[i];
      serial(async () => {
        try {
          await catalog();
          await runs.claimQueued(db, runId, h, leaseMs);
          await runJob(jobDeps, h, runId, trigger);
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
    plan,
    db,
    store,
    log,
    clock,
    run: (h) => runHour(h, "schedule"),
    pending: (h) => pending.has(h),
    retryAfterMs: deps.retryAfterMs,
  });

  return {
    runHour,
    submit,
    getRun: (runId) => runs.getRun(db, runId),
    listRuns: (opts) => runs.listRuns(db, opts),
    startScheduler: () => scheduler.start(),
    runDue: () => scheduler.tick(),
    lastCompletedHour: () => runs.lastCompletedHour(db),
    idle: () => serial(() => Promise.resolve()),
  };
}
