/**
 * The batch schedule inside `start`. Hour H runs once it has ended plus
 * `batch.grace` and, when the speed layer writes the lake, once the lake
 * holds all of it (complete, src/core/completeness.ts): while the speed layer
 * catches up on a backlog, hours run one after the other as they complete,
 * oldest first, never before. With the speed layer off (the lake is written
 * by someone else) the wall clock alone decides. After downtime every missed
 * hour of the last `batch.catch_up_hours` runs, oldest first. An hour is
 * missed when it is not in batch_hours and either the lake holds files for it
 * or it is at or after the first speed-layer window (so an hour whose lake
 * files went missing is still run, and reported). A batched hour whose lake
 * has changed since its run read it (late events) is stale and runs again
 * `batch.rerun_after` after the first such change, whatever its age.
 *
 * The clock is injected; runs go through the runner's one serial queue, so
 * never two at once in this process. A failed hour is retried after
 * `retryAfterMs`, not on every tick. Each tick also recomputes the
 * reconciliation of hours batched before every speed window of theirs closed.
 */
import type { Plan } from "../config/plan.ts";
import type { Db } from "../db/db.ts";
import { hourComplete } from "../core/completeness.ts";
import { HOUR_MS, hourStart } from "../core/window.ts";
import { listHour, type ObjectStore } from "../lake/mod.ts";
import type { Logger } from "../log.ts";
import { HourBusyError } from "./errors.ts";
import { readRule, readStaleHours } from "./hour_state.ts";
import { hourLabel, sqlHour } from "./hours.ts";
import { reconcilePending } from "./reconcile.ts";
import type { BatchTelemetry } from "./telemetry.ts";
import type { RunSummary, Trigger } from "./types.ts";

export interface SchedulerDeps {
  readonly plan: Plan;
  readonly db: Db;
  readonly store: ObjectStore;
  readonly log: Logger;
  readonly clock: () => number;
  /** Runs one hour (the runner's runHour): `schedule` the first time, `rerun` when stale. */
  readonly run: (hour: number, trigger: Trigger) => Promise<RunSummary>;
  readonly telemetry: BatchTelemetry;
  /** True when the hour is already queued in this process (e.g. by the API). */
  readonly pending?: (hour: number) => boolean;
  /** Wait before retrying a failed hour. Default 15 minutes. */
  readonly retryAfterMs?: number;
}

export interface Scheduler {
  /** One pass: runs every due hour, oldest first. */
  tick(): Promise<RunSummary[]>;
  /**
   * Ticks now and every `batch.tick` until stopped; `wake()` ticks at once
   * (after the current pass), e.g. when the lake completes another hour.
   */
  start(): { stop(): Promise<void>; wake(): void };
}

/** The newest hour whose end plus grace has passed at `nowMs`. */
export function latestDueHour(nowMs: number, graceMs: number): number {
  return hourStart(nowMs - graceMs) - HOUR_MS;
}

export function createScheduler(deps: SchedulerDeps): Scheduler {
  // deps.plan is read at each use: a reload may give the runner a new plan.
  const retryAfterMs = deps.retryAfterMs ?? 15 * 60_000;
  const failedAt = new Map<number, number>();
  const speedStart = firstSpeedHourReader(deps);
  const waiting = (h: number, now: number) => {
    if (deps.pending?.(h)) return true;
    const failed = failedAt.get(h);
    return failed !== undefined && now - failed < retryAfterMs;
  };

  async function dueHours(): Promise<{ hour: number; trigger: Trigger }[]> {
    const now = deps.clock();
    const [first, again] = await Promise.all([
      firstRuns(deps, now, waiting, speedStart),
      reruns(deps, now, waiting),
    ]);
    return [
      ...first.map((hour) => ({ hour, trigger: "schedule" as const })),
      ...again.map((hour) => ({ hour, trigger: "rerun" as const })),
    ].sort((a, b) => a.hour - b.hour);
  }

  async function tick(): Promise<RunSummary[]> {
    const due = await dueHours();
    if (due.length > 1) {
      deps.log.info("batch scheduler catching up", {
        hours: due.length,
        from: hourLabel(due[0].hour),
        to: hourLabel(due[due.length - 1].hour),
      });
    }
    const out: RunSummary[] = [];
    for (const { hour, trigger } of due) {
      const s = await runDue(deps, hour, trigger, failedAt);
      if (s) out.push(s);
    }
    // Hours batched before their last speed windows closed: their
    // reconciliation is final only now (reconcile.ts).
    await reconcilePending(deps.db, deps.log, deps.telemetry).catch((err) =>
      deps.log.warn("could not recompute the pending reconciliation", { error: err })
    );
    return out;
  }

  return { tick, start: () => startLoop(deps, tick) };
}

/** Whether hour `h` waits at `now` (queued here, or failed less than the retry delay ago). */
type Waiting = (h: number, now: number) => boolean;

/**
 * The hour of the speed layer's first window, read once it exists (it never
 * moves once set); undefined without speed windows or speed tables.
 */
function firstSpeedHourReader(deps: SchedulerDeps): () => Promise<number | undefined> {
  let firstSpeedHour: number | undefined;
  return async () => {
    if (firstSpeedHour !== undefined) return firstSpeedHour;
    const types = deps.plan.speed.metrics.map((m) => m.name);
    try {
      // min("timestamp") has no index to read it from (sql/006 left a BRIN
      // index, which has no order), so: take any window, then the oldest at or
      // before it. Windows arrive in time order, so the first row of the heap
      // is among the oldest and the BRIN index narrows the second query to the
      // table's first pages; the answer is exact whatever the order.
      const any = await deps.db.query<{ t: Date }>(
        `SELECT "timestamp" AS t FROM speed_partials WHERE type = ANY($1::text[]) LIMIT 1`,
        [types],
      );
      if (any.length === 0) return undefined;
      const rows = await deps.db.query<{ t: Date | null }>(
        `SELECT min("timestamp") AS t FROM speed_partials
         WHERE type = ANY($1::text[]) AND "timestamp" <= $2::timestamp`,
        [types, any[0].t],
      );
      const t = rows[0]?.t?.getTime();
      if (t !== undefined) firstSpeedHour = hourStart(t);
      return firstSpeedHour;
    } catch {
      return undefined; // no speed layer tables: the lake alone decides
    }
  };
}

/** Hours never batched that are due, oldest first; with completeness, only complete ones. */
async function firstRuns(
  deps: SchedulerDeps,
  now: number,
  waiting: Waiting,
  speedStart: () => Promise<number | undefined>,
): Promise<number[]> {
  const { db, plan } = deps;
  if (plan.batch.catchUpHours < 1) return [];
  const latest = latestDueHour(now, plan.batch.graceMs);
  const oldest = latest - (plan.batch.catchUpHours - 1) * HOUR_MS;
  const done = new Set(
    (await db.query<{ hour: Date }>(
      "SELECT hour FROM batch_hours WHERE hour >= $1::timestamp AND hour <= $2::timestamp",
      [sqlHour(oldest), sqlHour(latest)],
    )).map((r) => r.hour.getTime()),
  );
  let completeMs = Infinity;
  const { completeness: c } = await readRule(db, plan);
  if (c) {
    completeMs = c.completeMs;
    deps.telemetry.oldestIncompleteHour.set((c.oldestIncompleteHour ?? 0) / 1000);
  }
  const speedFrom = await speedStart();
  const due: number[] = [];
  for (let h = oldest; h <= latest; h += HOUR_MS) {
    // Hours complete in order: the first incomplete one ends the list.
    if (!hourComplete(h, completeMs, plan.speed.allowedLatenessMs)) break;
    if (done.has(h) || waiting(h, now)) continue;
    if (speedFrom !== undefined && h >= speedFrom) {
      due.push(h);
      continue;
    }
    if ((await listHour(deps.store, h)).length > 0) due.push(h);
  }
  return due;
}

/** Stale hours whose first unseen lake change is `batch.rerun_after` old. */
async function reruns(deps: SchedulerDeps, now: number, waiting: Waiting): Promise<number[]> {
  const stale = await readStaleHours(deps.db);
  deps.telemetry.staleHours.set(stale.length);
  return stale
    .filter((s) =>
      now - (s.staleSince ?? 0) >= deps.plan.batch.rerunAfterMs && !waiting(s.hour, now)
    )
    .map((s) => s.hour);
}

/** Runs one due hour, remembering a failure so it waits before the next try. */
async function runDue(
  deps: SchedulerDeps,
  h: number,
  trigger: Trigger,
  failedAt: Map<number, number>,
): Promise<RunSummary | undefined> {
  const { log } = deps;
  if (trigger === "rerun") {
    log.info("batch hour stale: running it again", { hour: hourLabel(h) });
  }
  try {
    const s = await deps.run(h, trigger);
    if (s.status === "failed") failedAt.set(h, deps.clock());
    else failedAt.delete(h);
    return s;
  } catch (err) {
    if (err instanceof HourBusyError) {
      log.info("batch hour skipped: running elsewhere", { hour: hourLabel(h) });
      return undefined;
    }
    failedAt.set(h, deps.clock());
    log.error("batch scheduler could not run the hour", { hour: hourLabel(h), error: err });
    return undefined;
  }
}

/** Ticks now and every `batch.tick` (read at each tick) until stopped; wake() ticks at once. */
function startLoop(
  deps: SchedulerDeps,
  tick: () => Promise<unknown>,
): { stop(): Promise<void>; wake(): void } {
  const { log } = deps;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let current: Promise<unknown> = Promise.resolve();
  let ticking = false;
  let again = false;
  const loop = () => {
    if (stopped) return;
    ticking = true;
    current = tick()
      .catch((err) => log.error("batch scheduler tick failed", { error: err }))
      .finally(() => {
        ticking = false;
        if (stopped) return;
        if (again) {
          again = false;
          loop();
        } else timer = setTimeout(loop, deps.plan.batch.tickMs);
      });
  };
  log.info("batch scheduler started", {
    rule: deps.plan.speed.enabled
      ? "complete hours"
      : "complete hours if a speed layer writes the lake, else wall clock",
    grace_ms: deps.plan.batch.graceMs,
    rerun_after_ms: deps.plan.batch.rerunAfterMs,
    tick_ms: deps.plan.batch.tickMs,
    catch_up_hours: deps.plan.batch.catchUpHours,
  });
  loop();
  return {
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await current;
    },
    wake() {
      if (stopped) return;
      if (ticking) {
        again = true;
        return;
      }
      clearTimeout(timer);
      loop();
    },
  };
}
