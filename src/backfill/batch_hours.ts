/**
 * The batch half of a backfill: hours queued for new or changed batch
 * metrics run again one at a time through the batch runner's queue (so the
 * scheduler's hours interleave), once no speed row is left (their
 * reconciliation compares with the recomputed windows). A failed run is
 * recorded on its hour; the batch layer counts the hour as stale until a run
 * succeeds, so its scheduler retries it like any failed run
 * (src/batch/hour_state.ts).
 */
import { hourLabel } from "../batch/mod.ts";
import type { WorkerContext } from "./_context.ts";
import * as store from "./store.ts";

/** Runs queued hours until none is left, a speed row opens, or the worker stops. */
export async function runQueuedHours(ctx: WorkerContext): Promise<void> {
  const { db, topic, log } = ctx;
  if (!ctx.runHour) return;
  while (!ctx.stopping()) {
    if (await store.hasOpenRows(db, topic)) return;
    const hour = await store.nextHour(db, topic);
    if (hour === undefined) return;
    let status = "failed";
    let runId: string | undefined;
    try {
      ({ status, runId } = await ctx.runHour(hour));
    } catch (error) {
      log.warn("batch hour of a backfill not run: it is retried later", {
        hour: hourLabel(hour),
        error,
      });
      return;
    }
    await store.finishHour(db, topic, hour, status, runId);
    const fields = { hour: hourLabel(hour), status, run_id: runId };
    if (status === "succeeded") {
      log.info("batch hour run again for new or changed metrics", fields);
    } else {
      log.warn("batch hour of a backfill did not succeed: the batch scheduler retries it", fields);
    }
  }
}
