/**
 * `GET /api/v1/hours`: each UTC hour of a range as the batch layer sees it
 * (`empty`: before any data, nothing to batch; `incomplete`: the lake does
 * not hold all of it yet; `complete`: it does,
 * not batched yet; `batched`: its batch is current; `stale`: the lake changed
 * after its batch read it, a re-run is due), with its last run, and how far
 * each partition's lake is complete. What decides it is src/core/completeness.ts.
 */
import type { Completeness, HourReport } from "../batch/mod.ts";
import { UserError } from "../errors.ts";
import type { ApiContext } from "./context.ts";
import { HOUR_MS } from "../core/window.ts";
import { DAY_MS, FROM_PARAM, iso, parseRange, TO_PARAM, wholeHours } from "./params.ts";
import type { RouteDef } from "./route.ts";
import { runJson } from "./batch_runs.ts";

/** Longest range: a month of hours. */
const MAX_RANGE_MS = 31 * DAY_MS;

const isoOrNull = (ms: number | undefined) =>
  ms === undefined || !Number.isFinite(ms) ? null : iso(ms);

/** The lake's completeness as JSON: event times in ISO-8601, null when unknown. */
export function completenessJson(c: Completeness) {
  return {
    topic: c.topic,
    partitions: c.partitions,
    completeThrough: isoOrNull(c.completeMs),
    oldestIncompleteHour: isoOrNull(c.oldestIncompleteHour),
    perPartition: c.perPartition.map((p) => ({
      partition: p.partition,
      nextOffset: p.nextOffset,
      lakeOffset: p.lakeOffset,
      lakeClock: isoOrNull(p.lakeClockMs),
      caughtUpAt: isoOrNull(p.caughtUpMs),
      completeThrough: isoOrNull(p.completeMs),
    })),
  };
}

function hourJson(h: HourReport) {
  return {
    hour: iso(h.hour),
    state: h.state,
    staleSince: isoOrNull(h.staleSince),
    lastRun: h.lastRun ? runJson(h.lastRun) : null,
  };
}

export function hoursRoutes(ctx: ApiContext): RouteDef[] {
  return [{
    method: "GET",
    path: "/api/v1/hours",
    operationId: "getHours",
    tag: "batch",
    summary: "Each hour's state (empty, incomplete, complete, batched, stale), its last run and " +
      "the lake's completeness per partition.",
    description: "The range is widened to whole hours; the default is the last 24 hours. " +
      "With the speed layer on, an hour is complete once every partition's lake is complete " +
      "past its end plus speed.allowed_lateness; with it off, once it has ended plus " +
      "batch.grace (`rule`: completeness or wall_clock). Under the completeness rule, an " +
      "hour before the first hour with data (the lake's or a batch's) is empty.",
    params: [FROM_PARAM, TO_PARAM],
    responses: {
      200: "`{ rule, from, to, completeness, hours: [{ hour, state, staleSince, lastRun }] }`",
      400: "A bad parameter.",
      503: "The batch layer is not running in this process.",
    },
    handler: async (c) => {
      if (!ctx.batch) {
        throw new UserError("the batch layer is not running in this process", { status: 503 });
      }
      const now = ctx.clock();
      const { from, to } = wholeHours(parseRange((n) => c.req.query(n), {
        defaultMs: DAY_MS,
        maxMs: MAX_RANGE_MS,
        now: Math.ceil(now / HOUR_MS) * HOUR_MS,
      }));
      // An empty range (to = from) lists no hour.
      const report = await ctx.batch.hours(from, to - HOUR_MS);
      return c.json({
        rule: report.rule,
        from: iso(from),
        to: iso(to),
        completeness: report.completeness ? completenessJson(report.completeness) : null,
        hours: report.hours.map(hourJson),
      });
    },
  }];
}
