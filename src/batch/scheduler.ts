/**
 * The batch schedule inside `start`: hour H runs once it has ended plus
 * `batch.grace`; after downtime every missed hour of the last
 * `batch.catch_up_hours` runs, oldest first. An hour is missed when it is not
 * in batch_hours and either the lake holds files for it or it is at or after
 * the first speed-layer window (so an hour whose lake files went missing is
 * still run, and reported). The clock is injected; runs go through the
 * runner's one serial queue, so never two at once in this process. A failed
 * hour is retried after `retryAfterMs`, not on every tick.
 */
import type { Plan } from "../config/plan.ts";
import type { Db } from "../db/db.ts";
import { HOUR_MS, hourStart } from "../core/window.ts";
import { listHour, type ObjectStore } from "../lake/mod.ts";
import type { Logger } from "../log.ts";
import { HourBusyError } from "./errors.ts";
import { hourLabel, sqlHour } from "./hours.ts";
import type { RunSummary } from "./types.ts";

export interface SchedulerDeps {
  readonly plan: Plan;
  readonly db: Db;
  readonly store: ObjectStore;
  readonly log: Logger;
  readonly clock: () => number;
  /** Runs one hour (the runner's runHour with trigger `schedule`). */
  readonly run: (hour: number) => Promise<RunSummary>;
  /** True when the hour is already queued in this process (e.g. by the API). */
  readonly pending?: (hour: number) => boolean;
  /** Wait before retrying a failed hour. Default 15 minutes. */
  readonly retryAfterMs?: number;
}

export interface Scheduler {
  /** One pass: runs every due hour, oldest first. */
  tick(): Promise<RunSummary[]>;
  /** Ticks now and every `batch.tick` until stopped. */
  start(): { stop(): Promise<void> };
}

/** The newest hour whose end plus grace has passed at `nowMs`. */
export function latestDueHour(nowMs: number, graceMs: number): number {
  return hourStart(nowMs - graceMs) - HOUR_MS;
}

export function createScheduler(deps: SchedulerDeps): Scheduler {
  const { plan, db, store, log, clock } = deps;
  const retryAfterMs = deps.retryAfterMs ?? 15 * 60_000;
  const failedAt = new Map<number, number>();
  let firstSpeedHour: number | undefined;

  async function speedStart(): Promise<number | undefined> {
    if (firstSpeedHour !== undefined) return firstSpeedHour;
    const types = plan.speed.metrics.map((m) => m.name);
    try {
      // min("timestamp") has no index to read it from (sql/006 left a BRIN
      // index, which has no order), so: take any window, then the oldest at or
      // before it. Windows arrive in time order, so the first row of the heap
      // is among the oldest and the BRIN index narrows the second query to the
      // table's first pages; the answer is exact whatever the order.
      const any = await db.query<{ t: Date }>(
        `SELECT "timestamp" AS t FROM speed_partials WHERE type = ANY($1::text[]) LIMIT 1`,
        [types],
      );
      if (any.length === 0) return undefined;
      const rows = await db.query<{ t: Date | null }>(
        `SELECT min("timestamp") AS t FROM speed_partials
         WHERE type = ANY($1::text[]) AND "timestamp" <= $2::timestamp`,
        [types, any[0].t],
      );
      const t = rows[0]?.t?.getTime();
      if (t !== undefined) firstSpeedHour = hourStart(t); // never moves once set
      return firstSpeedHour;
    } catch {
      return undefined; // no speed layer tables: the lake alone decides
    }
  }

  async function dueHours(): Promise<number[]> {
    const now = clock();
    const latest = latestDueHour(now, plan.batch.graceMs);
    const oldest = latest - (plan.batch.catchUpHours - 1) * HOUR_MS;
    if (plan.batch.catchUpHours < 1) return [];
    const done = new Set(
      (await db.query<{ hour: Date }>(
        "SELECT hour FROM batch_hours WHERE hour >= $1::timestamp AND hour <= $2::timestamp",
        [sqlHour(oldest), sqlHour(latest)],
      )).map((r) => r.hour.getTime()),
    );
    const speedFrom = await speedStart();
    const due: number[] = [];
    for (let h = oldest; h <= latest; h += HOUR_MS) {
      if (done.has(h) || deps.pending?.(h)) continue;
      const failed = failedAt.get(h);
      if (failed !== undefined && now - failed < retryAfterMs) continue;
      if (speedFrom !== undefined && h >= speedFrom) {
        due.push(h);
        continue;
      }
      if ((await listHour(store, h)).length > 0) due.push(h);
    }
    return due;
  }

  async function tick(): Promise<RunSummary[]> {
    const due = await dueHours();
    if (due.length > 1) {
      log.info("batch scheduler catching up", {
        hours: due.length,
        from: hourLabel(due[0]),
        to: hourLabel(due[due.length - 1]),
      });
    }
    const out: RunSummary[] = [];
    for (const h of due) {
      try {
        const s = await deps.run(h);
        if (s.status === "failed") failedAt.set(h, clock());
        else failedAt.delete(h);
        out.push(s);
      } catch (err) {
        if (err instanceof HourBusyError) {
          log.info("batch hour skipped: running elsewhere", { hour: hourLabel(h) });
          continue;
        }
        failedAt.set(h, clock());
        log.error("batch scheduler could not run the hour", { hour: hourLabel(h), error: err });
      }
    }
    return out;
  }

  function start() {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let current: Promise<unknown> = Promise.resolve();
    const loop = () => {
      if (stopped) return;
      current = tick()
        .catch((err) => log.error("batch scheduler tick failed", { error: err }))
        .finally(() => {
          if (!stopped) timer = setTimeout(loop, plan.batch.tickMs);
        });
    };
    log.info("batch scheduler started", {
      grace_ms: plan.batch.graceMs,
      tick_ms: plan.batch.tickMs,
      catch_up_hours: plan.batch.catchUpHours,
    });
    loop();
    return {
      async stop() {
        stopped = true;
        if (timer !== undefined) clearTimeout(timer);
        await current;
      },
    };
  }

  return { tick, start };
}
