/**
 * The backfill worker: recomputes, in the background, the windows of speed
 * metrics that a switch (or `deno task backfill`) left to recompute, then
 * runs again the batch hours queued for new or changed batch metrics.
 *
 * A row of backfill_partitions is one metric in one partition. The worker
 * claims it (a lease, renewed with every chunk; a row of a process gone from
 * this host is taken over at once), streams the partition's lake events in
 * offset order from where the row stopped (src/lake partition_stream.ts),
 * replays them (replay.ts) and writes each chunk's windows through the speed
 * layer's sink, combined with the rows already there, in one transaction with
 * the row's new position and clock. A crash loses at most the chunk in
 * flight, which the next claimant replays from the recorded position. The
 * replay reads only what the lake holds durably: past the partition's
 * lake-durable offset (speed_progress) it waits for the lake to catch up,
 * and says why in its log and status (lake_wait.ts, waits.ts).
 *
 * It runs at low priority on the speed layer's thread: after each chunk it
 * rests as long as the chunk took, so it never takes more than about half of
 * the CPU, and the event loop serves the live stream between chunks.
 * Speed rows come first; batch hours run once no speed row is left (their
 * reconciliation compares with the recomputed windows), one at a time
 * through the batch runner's queue, so the scheduler's hours interleave.
 *
 * The steps live beside it: replaying one row (row_replay.ts), the batch
 * hours (batch_hours.ts), what the status shows (status.ts); this file
 * claims rows, loops, and drains for the CLI.
 */
import type { Plan } from "../config/plan.ts";
import type { Db } from "../db/db.ts";
import { type ObjectStore, StoreError } from "../lake/mod.ts";
import { log as rootLog, type Logger } from "../log.ts";
import type { Registry } from "../metrics.ts";
import { readProgress } from "../speed/mod.ts";
import { processHolder, type RunHolder } from "../holder.ts";
import { type RowProgress, sleep, type WorkerContext } from "./_context.ts";
import { runQueuedHours } from "./batch_hours.ts";
import { type LakePace, lakeStalled, stalledMessage } from "./lake_wait.ts";
import { type Outcome, replayRow } from "./row_replay.ts";
import { type BackfillStatus, summarize } from "./status.ts";
import * as store from "./store.ts";
import type { BackfillRow } from "./store.ts";
import { backfillTelemetry } from "./telemetry.ts";
import { Waits } from "./waits.ts";

export type { RowProgress } from "./_context.ts";
export type { BackfillStatus, MetricBackfill, RowWait } from "./status.ts";
export { summarize } from "./status.ts";

export interface BackfillWorkerDeps {
  readonly db: Db;
  readonly store: ObjectStore;
  /** The pipeline's topic (names its rows). */
  readonly topic: string;
  /** The active plan (window options, for the replay; the lake's roll, for waits). */
  readonly plan: () => Plan;
  /** Default: the process logger with `component: "backfill"`. */
  readonly log?: Logger;
  /** Default: the process registry. */
  readonly registry?: Registry;
  /** Who claims rows. Default: this process. */
  readonly holder?: RunHolder;
  /** Runs a batch hour again (the batch runner's runHour, trigger `backfill`); without it, queued hours wait. */
  readonly runHour?: (hour: number) => Promise<{ status: string; runId: string }>;
  /** Lease of a claimed row, renewed with each chunk. Default 60 s. */
  readonly leaseMs?: number;
  /** Rest after a chunk, as a multiple of the time the chunk took. Default 1. */
  readonly restRatio?: number;
  /** Events replayed per chunk (one transaction). Default 20,000. */
  readonly chunkEvents?: number;
  /** Progress lines at most this often per row. Default 5 s. */
  readonly progressEveryMs?: number;
  /** Wait when there is nothing to do, or the lake is behind. Default 1 s. */
  readonly pollMs?: number;
  /** Called after each chunk and each finished row (progress bars). */
  readonly onProgress?: (p: RowProgress) => void;
}

export interface DrainOptions {
  /** Only rows of these metrics. Default: every metric. */
  readonly metrics?: readonly string[];
  /** Then run the queued batch hours. Default false. */
  readonly batch?: boolean;
  /**
   * Give up (and give the rows back) when a row waits on a partition whose
   * lake will not catch up by itself: no speed layer has recorded its
   * progress for longer than a roll and a flush (lake_wait.ts). Default
   * false: wait as long as it takes.
   */
  readonly giveUpWhenStalled?: boolean;
}

export interface BackfillWorker {
  /** Starts the background loop. */
  start(): void;
  /** Looks for work now (a switch recorded rows). */
  wake(): void;
  /** Stops after the chunk in flight (its rows and position are committed or not at all). */
  stop(): Promise<void>;
  /**
   * Processes rows (of `metrics`, when given) until none is claimable, then
   * queued batch hours when `batch`; for the CLI. Resolves when done, or
   * `gave_up` (see `giveUpWhenStalled`; `gaveUpBecause` says why).
   */
  drain(opts?: DrainOptions): Promise<"done" | "gave_up">;
  /** Why the last drain gave up. */
  readonly gaveUpBecause?: string;
  status(): Promise<BackfillStatus>;
}

export function createBackfillWorker(deps: BackfillWorkerDeps): BackfillWorker {
  return new Worker(deps);
}

class Worker implements BackfillWorker {
  readonly #ctx: WorkerContext;
  readonly #waits: Waits;
  #stopping = false;
  #loop: Promise<void> | undefined;
  #wakeUp: (() => void) | undefined;
  /** Chunks committed so far. */
  #progressed = 0;
  gaveUpBecause?: string;

  constructor(deps: BackfillWorkerDeps) {
    const log = deps.log ?? rootLog.child({ component: "backfill" });
    this.#ctx = {
      db: deps.db,
      store: deps.store,
      topic: deps.topic,
      plan: deps.plan,
      log,
      holder: deps.holder ?? processHolder(),
      leaseMs: deps.leaseMs ?? 60_000,
      restRatio: deps.restRatio ?? 1,
      chunkEvents: deps.chunkEvents ?? 20_000,
      progressEveryMs: deps.progressEveryMs ?? 5_000,
      pollMs: deps.pollMs ?? 1_000,
      telemetry: backfillTelemetry(deps.registry),
      onProgress: deps.onProgress,
      runHour: deps.runHour,
      stopping: () => this.#stopping,
      committed: () => this.#progressed++,
    };
    this.#waits = new Waits(log);
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  wake(): void {
    this.#wakeUp?.();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wakeUp?.();
    await this.#loop;
  }

  async drain(opts: DrainOptions = {}): Promise<"done" | "gave_up"> {
    this.gaveUpBecause = undefined;
    for (;;) {
      const outcome = await this.#speedPass(opts.metrics);
      if (this.#stopping) return "done";
      if (outcome === "idle") break;
      const stalled = opts.giveUpWhenStalled ? await this.#stalled(opts.metrics) : undefined;
      if (stalled !== undefined) {
        await this.#giveBack(opts.metrics);
        this.gaveUpBecause = stalled;
        this.#ctx.log.warn("backfill gave up: the lake does not catch up", { reason: stalled });
        return "gave_up";
      }
      await sleep(this.#ctx.pollMs);
    }
    if (opts.batch) await runQueuedHours(this.#ctx);
    return "done";
  }

  async status(): Promise<BackfillStatus> {
    const { db, topic } = this.#ctx;
    const [rows, hours] = await Promise.all([
      store.listRows(db, topic),
      store.hourCounts(db, topic),
    ]);
    const metrics = summarize(rows, this.#waits.list());
    return {
      active: metrics.some((m) => m.state === "running") || hours.queued > 0,
      metrics,
      batchHours: hours,
    };
  }

  #pace(): LakePace {
    const plan = this.#ctx.plan();
    return { rollMaxAgeMs: plan.lake.roll.maxAgeMs, flushIntervalMs: plan.speed.flushIntervalMs };
  }

  #nap(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.#wakeUp = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.#wakeUp = done;
    });
  }

  async #claim(
    metrics: readonly string[] | undefined,
    skip: ReadonlySet<string>,
  ): Promise<BackfillRow | undefined> {
    const { db, topic, holder, leaseMs } = this.#ctx;
    const gone = (await store.holders(db, topic)).filter((h) => holder.gone(h));
    return await store.claimRow(db, topic, holder.id, leaseMs, gone, metrics, [...skip]);
  }

  /** Claims and replays rows until none is claimable (or the lake holds them up). */
  async #speedPass(metrics?: readonly string[]): Promise<"idle" | "waiting"> {
    let waiting = false;
    const skip = new Set<string>();
    while (!this.#stopping) {
      // Rows waiting on the lake are skipped for the rest of the pass.
      const row = await this.#claim(metrics, skip);
      if (!row) break;
      const t0 = Date.now();
      const outcome = await this.#replay(row);
      if (outcome === undefined) continue;
      if (outcome.kind === "stopped") break;
      if (outcome.kind === "waiting") {
        skip.add(`${row.metric}/${row.partition}`);
        waiting = true;
        this.#waits.note(row.metric, outcome.lag, this.#pace());
      } else await this.#finished(row, Date.now() - t0);
    }
    await this.#refreshGauge();
    return waiting ? "waiting" : "idle";
  }

  /** Replays a row; undefined when it went away under the replay (claim the next one). */
  async #replay(row: BackfillRow): Promise<Outcome | undefined> {
    const { log, pollMs } = this.#ctx;
    try {
      return await replayRow(this.#ctx, row);
    } catch (error) {
      if (error instanceof store.RowMovedError) {
        this.#waits.end(row.metric, row.partition);
        log.info("backfill row superseded: dropped", {
          metric: row.metric,
          partition: row.partition,
        });
        return undefined;
      }
      if (error instanceof StoreError && error.kind === "not_found") {
        // A compaction replaced a file under the stream: list again, from the recorded position.
        log.debug("lake file gone during a backfill: listing again", { error });
        await sleep(Math.min(200, pollMs));
        return undefined;
      }
      throw error;
    }
  }

  async #finished(row: BackfillRow, ms: number): Promise<void> {
    const { db, topic, log } = this.#ctx;
    const waited = this.#waits.end(row.metric, row.partition);
    log.info("backfill of a partition finished", {
      metric: row.metric,
      partition: row.partition,
      stop_offset: row.stopOffset,
      ms,
      ...(waited !== undefined ? { waited_for_lake_ms: waited } : {}),
    });
    const rows = (await store.listRows(db, topic)).filter((r) => r.metric === row.metric);
    if (rows.every((r) => r.finishedAt !== undefined)) {
      const [m] = summarize(rows);
      log.info(`backfill of ${row.metric} finished: every partition is done`, {
        metric: row.metric,
        partitions: m.partitions,
        events: m.events,
        rows_written: m.rowsWritten,
      });
    }
  }

  /** Why a row of `metrics` that waits will not see the lake catch up; undefined while it may. */
  async #stalled(metrics?: readonly string[]): Promise<string | undefined> {
    const waits = this.#waits.list(metrics);
    if (waits.length === 0) return undefined;
    const { db, topic } = this.#ctx;
    const progress = await readProgress(db, topic, waits.map((w) => w.partition));
    const pace = this.#pace();
    for (const w of waits) {
      const age = progress.get(w.partition)?.ageMs;
      if (lakeStalled(age, pace)) return stalledMessage(w.lag, age, pace);
    }
    return undefined;
  }

  /** Gives back the rows this worker holds, of `metrics` when given. */
  async #giveBack(metrics?: readonly string[]): Promise<void> {
    const { db, topic, holder } = this.#ctx;
    for (const r of await store.listRows(db, topic)) {
      if (r.holder !== holder.id || (metrics && !metrics.includes(r.metric))) continue;
      await store.releaseRow(db, r, holder.id);
      this.#waits.end(r.metric, r.partition);
    }
  }

  async #refreshGauge(): Promise<void> {
    try {
      const rows = await store.listRows(this.#ctx.db, this.#ctx.topic);
      this.#ctx.telemetry.open.set(rows.filter((r) => r.finishedAt === undefined).length);
    } catch { /* a gauge is not worth a failure */ }
  }

  async #run(): Promise<void> {
    const { log, pollMs } = this.#ctx;
    let failures = 0;
    while (!this.#stopping) {
      try {
        const speed = await this.#speedPass();
        await runQueuedHours(this.#ctx);
        failures = 0;
        await this.#nap(speed === "waiting" ? pollMs : pollMs * 5);
      } catch (error) {
        failures++;
        if (failures === 1) log.warn("backfill failed, retrying", { error });
        else log.debug("backfill still failing", { failures, error });
        await this.#nap(Math.min(30_000, pollMs * 2 ** Math.min(failures, 5)));
      }
    }
  }
}
