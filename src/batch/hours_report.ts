/**
 * What the batch layer says about hours: each hour's state for
 * `GET /api/v1/hours`, and the oldest incomplete hour and stale hours for
 * `/ready` and `/metrics` (which also set the layer's gauges).
 */
import type { Plan } from "../config/plan.ts";
import type { Db } from "../db/db.ts";
import {
  type BatchRule,
  type Completeness,
  type HourState,
  hourState,
  readBatchedHours,
  readRule,
  readStaleHours,
} from "./hour_state.ts";
import { checkHour, hourRange } from "./hours.ts";
import * as runs from "./runs.ts";
import type { BatchTelemetry } from "./telemetry.ts";
import type { RunRecord } from "./types.ts";

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

/** The state of each hour in [from, to] (hour starts, both included). */
export async function hoursReport(
  db: Db,
  plan: Plan,
  nowMs: number,
  from: number,
  to: number,
): Promise<HoursReport> {
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
    nowMs,
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

/** The oldest incomplete hour and how many hours are stale; sets the layer's gauges. */
export async function hoursSummary(
  db: Db,
  plan: Plan,
  telemetry: BatchTelemetry,
): Promise<HoursSummary> {
  const [{ rule, completeness }, stale] = await Promise.all([
    readRule(db, plan),
    readStaleHours(db),
  ]);
  telemetry.staleHours.set(stale.length);
  const oldest = completeness?.oldestIncompleteHour;
  if (completeness) telemetry.oldestIncompleteHour.set((oldest ?? 0) / 1000);
  return { rule, oldestIncompleteHour: oldest, staleHours: stale.length };
}
