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
 * lake-durable offset (speed_progress) it waits for the lake to catch up.
 *
 * It runs at low priority on the speed layer's thread: after each chunk it
 * rests as long as the chunk took, so it never takes more than about half of
 * the CPU, and the event loop serves the live stream between chunks.
 * Speed rows come first; batch hours run once no speed row is left (their
 * reconciliation compares with the recomputed windows), one at a time
 * through the batch runner's queue, so the scheduler's hours interleave.
 */
import type { Plan } from "../config/plan.ts";
import { compileMetric } from "../core/metric.ts";
import type { DroppedValue, WindowDelta } from "../core/partition_windows.ts";
import { hourStart } from "../core/window.ts";
import type { Db } from "../db/db.ts";
import {
  listPartitionFiles,
  type ObjectStore,
  type PartitionFile,
  StoreError,
  streamPartition,
} from "../lake/mod.ts";
import { log as rootLog, type Logger } from "../log.ts";
import type { Registry } from "../metrics.ts";
import { readProgress, writeWindowDeltas } from "../speed/mod.ts";
import { processHolder, type RunHolder } from "../holder.ts";
import { PartitionReplay } from "./replay.ts";
import * as store from "./store.ts";
import type { BackfillRow } from "./store.ts";
import { backfillTelemetry } from "./telemetry.ts";

export interface BackfillWorkerDeps {
  readonly db: Db;
  readonly store: ObjectStore;
  /** The pipeline's topic (names its rows). */
  readonly topic: string;
  /** The active plan (window options, for the replay). */
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

/** Where one row stands, after a chunk. */
export interface RowProgress {
  readonly metric: string;
  readonly partition: number;
  readonly nextOffset: number;
  readonly stopOffset: number;
  readonly startOffset: number;
  readonly finished: boolean;
}

/** One metric's backfill, as `/api/v1/config` and the CLI show it. */
export interface MetricBackfill {
  readonly metric: string;
  readonly reason: BackfillRow["reason"];
  readonly generation?: number;
  /** `running`: rows left; `finished`: every partition is done. */
  readonly state: "running" | "finished";
  /** Share of the offsets to replay that are replayed, 0..1. */
  readonly progress: number;
  readonly partitions: number;
  readonly finishedPartitions: number;
  /** Where each partition switched (events below were replayed from the lake). */
  readonly switchOffsets: Readonly<Record<string, number>>;
  /** First window recomputed (ISO), null for every hour of the lake. */
  readonly from: string | null;
  readonly events: number;
  readonly rowsWritten: number;
  readonly createdAt: string;
  readonly finishedAt: string | null;
}

export interface BackfillStatus {
  /** Something is left to recompute or run. */
  readonly active: boolean;
  readonly metrics: readonly MetricBackfill[];
  readonly batchHours: {
    readonly queued: number;
    readonly finished: number;
    readonly failed: number;
  };
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
   * queued batch hours when `batch`; for the CLI. Resolves when done.
   */
  drain(
    opts?: {
      metrics?: readonly string[];
      batch?: boolean;
      /** Give up (and give the rows back) after waiting this long on the lake without progress. Default: never. */
      giveUpAfterMs?: number;
    },
  ): Promise<"done" | "gave_up">;
  status(): Promise<BackfillStatus>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What replaying one row came to. */
type Outcome = "finished" | "waiting" | "moved" | "stopped";

export function createBackfillWorker(deps: BackfillWorkerDeps): BackfillWorker {
  const { db, topic } = deps;
  const log = deps.log ?? rootLog.child({ component: "backfill" });
  const holder = deps.holder ?? processHolder();
  const leaseMs = deps.leaseMs ?? 60_000;
  const restRatio = deps.restRatio ?? 1;
  const chunkEvents = deps.chunkEvents ?? 20_000;
  const progressEveryMs = deps.progressEveryMs ?? 5_000;
  const pollMs = deps.pollMs ?? 1_000;
  const telemetry = backfillTelemetry(deps.registry);
  let stopping = false;
  let loop: Promise<void> | undefined;
  let wakeUp: (() => void) | undefined;
  /** Chunks committed so far (drain tells progress from waiting). */
  let progressed = 0;

  const nap = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        wakeUp = undefined;
        resolve();
      }
      wakeUp = done;
    });

  async function claim(
    metrics: readonly string[] | undefined,
    skip: ReadonlySet<string>,
  ): Promise<BackfillRow | undefined> {
    const gone = (await store.holders(db, topic)).filter((h) => holder.gone(h));
    return await store.claimRow(db, topic, holder.id, leaseMs, gone, metrics, [...skip]);
  }

  /** Replays one claimed row as far as the lake allows. */
  async function replay(row: BackfillRow): Promise<Outcome> {
    const speed = deps.plan().speed;
    const p = row.partition;
    const lake = (await readProgress(db, topic, [p])).get(p)?.lakeOffset ?? 0;
    const fromHour = Number.isFinite(row.fromMs) ? hourStart(row.fromMs) : -Infinity;
    const files = await listPartitionFiles(deps.store, p, fromHour, Infinity);
    // Stopping early for an upper window bound needs every file below the
    // stop offset listed, so only once the lake is durable up to it.
    const stop = lake >= row.stopOffset ? effectiveStop(row, files) : row.stopOffset;
    let next = row.nextOffset ?? 0;
    const startOffset = row.startOffset ??
      Math.min(stop, Math.max(next, files.find((f) => f.lastOffset >= next)?.firstOffset ?? next));
    const limit = Math.min(stop, lake);
    const report = (finished: boolean) =>
      deps.onProgress?.({
        metric: row.metric,
        partition: p,
        nextOffset: next,
        stopOffset: stop,
        startOffset,
        finished,
      });
    let position: store.Position = { nextOffset: row.nextOffset, hash: row.hash };
    const commit = async (
      to: number,
      clockMs: number,
      work: { deltas: WindowDelta[]; dropped: DroppedValue[]; events: number },
      finished: boolean,
    ) => {
      const aggs = new Map([[row.metric, row.definition.aggregation]]);
      await db.transaction(async (tx) => {
        await store.checkPosition(tx, row, holder.id, position);
        await writeWindowDeltas(tx, topic, speed.windowMs, aggs, p, work.deltas, work.dropped);
        await store.advance(tx, row, {
          nextOffset: to,
          clockMs,
          startOffset,
          events: work.events,
          rows: work.deltas.length,
          leaseMs,
          finished,
        });
      });
      position = { nextOffset: to, hash: row.hash };
      next = to;
      progressed++;
      telemetry.events.inc({ metric: row.metric }, work.events);
      telemetry.rows.inc({ metric: row.metric }, work.deltas.length);
      report(finished);
    };

    const replay = new PartitionReplay(
      [compileMetric(row.definition)],
      { windowMs: speed.windowMs, allowedLatenessMs: speed.allowedLatenessMs },
      { fromMs: row.fromMs, untilMs: row.untilMs },
      row.clockMs,
    );
    let lastLog = Date.now();
    if (next < limit) {
      const stream = streamPartition(deps.store, {
        partition: p,
        files,
        startOffset: next,
        stopOffset: limit,
        sliceRows: chunkEvents,
      });
      for await (const c of stream) {
        const t0 = performance.now();
        const ev = { bytes: 0, timestamp: 0, app: "", id: "", antenna_id: "" };
        for (let i = 0; i < c.rows; i++) {
          ev.bytes = c.bytes[i];
          ev.timestamp = c.timestamp[i] / 1000;
          ev.app = c.app[i];
          ev.id = c.id[i];
          ev.antenna_id = c.antenna_id[i];
          replay.add(ev);
        }
        const to = c.offset[c.rows - 1] + 1;
        await commit(to, replay.clockMs, { ...replay.take(), events: c.rows }, false);
        if (Date.now() - lastLog >= progressEveryMs) {
          lastLog = Date.now();
          log.info("backfill progress", {
            metric: row.metric,
            partition: p,
            offset: next,
            stop,
            percent: percent(startOffset, next, stop),
          });
        }
        if (stopping) return "stopped";
        await sleep(Math.max(1, (performance.now() - t0) * restRatio));
      }
    }
    // Every lake event below `limit` is replayed: nothing more below it.
    const finished = limit >= stop;
    if (next < limit || finished) {
      await commit(
        Math.max(next, limit),
        replay.clockMs,
        { deltas: [], dropped: [], events: 0 },
        finished,
      );
    }
    return finished ? "finished" : "waiting";
  }

  /** Claims and replays rows until none is claimable (or the lake holds them up). */
  async function speedPass(metrics?: readonly string[]): Promise<"idle" | "waiting"> {
    let waiting = false;
    const skip = new Set<string>();
    while (!stopping) {
      // Rows waiting on the lake are skipped for the rest of the pass.
      const row = await claim(metrics, skip);
      if (!row) break;
      const id = `${row.metric}/${row.partition}`;
      let outcome: Outcome;
      const t0 = Date.now();
      try {
        outcome = await replay(row);
      } catch (error) {
        if (error instanceof store.RowMovedError) {
          log.info("backfill row superseded: dropped", {
            metric: row.metric,
            partition: row.partition,
          });
          continue;
        }
        if (error instanceof StoreError && error.kind === "not_found") {
          // A compaction replaced a file under the stream: list again, from the recorded position.
          log.debug("lake file gone during a backfill: listing again", { error });
          await sleep(Math.min(200, pollMs));
          continue;
        }
        throw error;
      }
      if (outcome === "finished") {
        log.info("backfill of a partition finished", {
          metric: row.metric,
          partition: row.partition,
          stop_offset: row.stopOffset,
          ms: Date.now() - t0,
        });
        if (!(await store.hasOpenRows(db, topic))) {
          log.info("backfill finished: every partition is done");
        }
      } else if (outcome === "waiting") {
        skip.add(id);
        waiting = true;
        log.debug("backfill waits for the lake to be durable up to the switch", {
          metric: row.metric,
          partition: row.partition,
        });
      } else if (outcome === "stopped") break;
    }
    await refreshGauge();
    return waiting ? "waiting" : "idle";
  }

  async function batchPass(): Promise<void> {
    if (!deps.runHour) return;
    while (!stopping) {
      if (await store.hasOpenRows(db, topic)) return;
      const hour = await store.nextHour(db, topic);
      if (hour === undefined) return;
      let status = "failed";
      let runId: string | undefined;
      try {
        const s = await deps.runHour(hour);
        status = s.status;
        runId = s.runId;
      } catch (error) {
        log.warn("batch hour of a backfill not run: it is retried later", {
          hour: new Date(hour).toISOString().slice(0, 13),
          error,
        });
        return;
      }
      await store.finishHour(db, topic, hour, status, runId);
      // A failed hour stays failed here (counted in the status); `deno task backfill
      // --metric` or `deno task batch` runs it again.
      const fields = { hour: new Date(hour).toISOString().slice(0, 13), status, run_id: runId };
      if (status === "succeeded") {
        log.info("batch hour run again for new or changed metrics", fields);
      } else log.warn("batch hour of a backfill did not succeed", fields);
    }
  }

  async function refreshGauge(): Promise<void> {
    try {
      const rows = await store.listRows(db, topic);
      telemetry.open.set(rows.filter((r) => r.finishedAt === undefined).length);
    } catch { /* a gauge is not worth a failure */ }
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (!stopping) {
      try {
        const speed = await speedPass();
        await batchPass();
        failures = 0;
        await nap(speed === "waiting" ? pollMs : pollMs * 5);
      } catch (error) {
        failures++;
        if (failures === 1) log.warn("backfill failed, retrying", { error });
        else log.debug("backfill still failing", { failures, error });
        await nap(Math.min(30_000, pollMs * 2 ** Math.min(failures, 5)));
      }
    }
  }

  return {
    start() {
      if (!loop) loop = run();
    },
    wake() {
      wakeUp?.();
    },
    async stop() {
      stopping = true;
      wakeUp?.();
      await loop;
    },
    async drain(opts = {}) {
      let lastMoved = Date.now();
      let lastSeen = progressed;
      for (;;) {
        const outcome = await speedPass(opts.metrics);
        if (stopping) return "done";
        if (outcome === "idle") break;
        if (progressed !== lastSeen) {
          lastSeen = progressed;
          lastMoved = Date.now();
        } else if (
          opts.giveUpAfterMs !== undefined && Date.now() - lastMoved > opts.giveUpAfterMs
        ) {
          for (const r of await store.listRows(db, topic)) {
            if (r.holder === holder.id) await store.releaseRow(db, r, holder.id);
          }
          return "gave_up";
        }
        await sleep(pollMs);
      }
      if (opts.batch) await batchPass();
      return "done";
    },
    async status() {
      const [rows, hours] = await Promise.all([
        store.listRows(db, topic),
        store.hourCounts(db, topic),
      ]);
      const metrics = summarize(rows);
      return {
        active: metrics.some((m) => m.state === "running") || hours.queued > 0,
        metrics,
        batchHours: hours,
      };
    },
  };
}

/** The replay stops at the switch, or earlier when windows end before `untilMs`. */
function effectiveStop(row: BackfillRow, files: readonly PartitionFile[]): number {
  if (!Number.isFinite(row.untilMs)) return row.stopOffset;
  // Past the last event of an hour before `untilMs`, no event changes a window in range.
  let last = -1;
  for (const f of files) if (f.hourMs < row.untilMs) last = Math.max(last, f.lastOffset);
  return Math.min(row.stopOffset, last + 1);
}

function percent(start: number, next: number, stop: number): number {
  if (stop <= start) return 100;
  return Math.round((Math.min(1, Math.max(0, (next - start) / (stop - start)))) * 1000) / 10;
}

/** Rows grouped by metric, newest first. */
export function summarize(rows: readonly BackfillRow[]): MetricBackfill[] {
  const by = new Map<string, BackfillRow[]>();
  for (const r of rows) {
    let list = by.get(r.metric);
    if (!list) by.set(r.metric, list = []);
    list.push(r);
  }
  const iso = (ms?: number) => (ms === undefined ? null : new Date(ms).toISOString());
  const out: MetricBackfill[] = [];
  for (const [metric, list] of by) {
    let total = 0, done = 0;
    for (const r of list) {
      const start = r.startOffset ?? 0;
      const span = Math.max(0, r.stopOffset - start);
      total += span;
      done += r.finishedAt !== undefined
        ? span
        : r.nextOffset === undefined
        ? 0
        : Math.min(span, Math.max(0, r.nextOffset - start));
    }
    const finished = list.filter((r) => r.finishedAt !== undefined).length;
    const first = list.reduce((a, b) => (a.createdAt <= b.createdAt ? a : b));
    const lastDone = list.every((r) => r.finishedAt !== undefined)
      ? Math.max(...list.map((r) => r.finishedAt!))
      : undefined;
    out.push({
      metric,
      reason: first.reason,
      ...(first.generation !== undefined ? { generation: first.generation } : {}),
      state: finished === list.length ? "finished" : "running",
      progress: total === 0 ? (finished === list.length ? 1 : 0) : done / total,
      partitions: list.length,
      finishedPartitions: finished,
      switchOffsets: Object.fromEntries(
        [...list].sort((a, b) => a.partition - b.partition).map((
          r,
        ) => [String(r.partition), r.stopOffset]),
      ),
      from: Number.isFinite(first.fromMs) ? iso(first.fromMs) : null,
      events: list.reduce((n, r) => n + r.events, 0),
      rowsWritten: list.reduce((n, r) => n + r.rowsWritten, 0),
      createdAt: iso(first.createdAt)!,
      finishedAt: iso(lastDone),
    });
  }
  return out.sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0));
}
