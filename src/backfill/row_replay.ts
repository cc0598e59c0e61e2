/**
 * Replaying one claimed row (one metric in one partition) as far as the lake
 * allows: list the partition's files from the row's first hour, stream its
 * events in offset order from where the row stopped up to the lake-durable
 * offset (or the stop, when the lake is past it), fold them through the
 * metric's window state and commit each chunk's windows with the row's new
 * position in one transaction. What is left when the lake lags is a wait,
 * returned with where the lake stands so the worker can say why.
 */
import { compileMetric } from "../core/metric.ts";
import type { DroppedValue, WindowDelta } from "../core/partition_windows.ts";
import { hourStart } from "../core/window.ts";
import { listPartitionFiles, type PartitionFile, streamPartition } from "../lake/mod.ts";
import { readProgress, writeWindowDeltas } from "../speed/mod.ts";
import { sleep, type WorkerContext } from "./_context.ts";
import type { LakeLag } from "./lake_wait.ts";
import { PartitionReplay } from "./replay.ts";
import { percent } from "./status.ts";
import * as store from "./store.ts";
import type { BackfillRow } from "./store.ts";

/** What replaying one row came to. */
export type Outcome =
  | { readonly kind: "finished" }
  /** The lake is not durable up to the row's stop yet. */
  | { readonly kind: "waiting"; readonly lag: LakeLag }
  | { readonly kind: "stopped" };

/** Replays one claimed row as far as the lake allows. */
export async function replayRow(ctx: WorkerContext, row: BackfillRow): Promise<Outcome> {
  return await new RowReplay(ctx, row, await boundsOf(ctx, row)).run();
}

/** Where the replay of a row starts and stops, given the lake now. */
interface Bounds {
  readonly files: readonly PartitionFile[];
  /** Lake-durable offset of the partition. */
  readonly lake: number;
  /** The replay is done at it. */
  readonly stop: number;
  /** First offset of the whole replay (progress). */
  readonly startOffset: number;
  /** This pass reads up to it: the stop, or the lake when that is short of it. */
  readonly limit: number;
}

async function boundsOf(ctx: WorkerContext, row: BackfillRow): Promise<Bounds> {
  const p = row.partition;
  const lake = (await readProgress(ctx.db, ctx.topic, [p])).get(p)?.lakeOffset ?? 0;
  const fromHour = Number.isFinite(row.fromMs) ? hourStart(row.fromMs) : -Infinity;
  const files = await listPartitionFiles(ctx.store, p, fromHour, Infinity);
  // Stopping early for an upper window bound needs every file below the
  // stop offset listed, so only once the lake is durable up to it.
  const stop = lake >= row.stopOffset ? effectiveStop(row, files) : row.stopOffset;
  const next = row.nextOffset ?? 0;
  const startOffset = row.startOffset ??
    Math.min(stop, Math.max(next, files.find((f) => f.lastOffset >= next)?.firstOffset ?? next));
  return { files, lake, stop, startOffset, limit: Math.min(stop, lake) };
}

/** The replay stops at the switch, or earlier when windows end before `untilMs`. */
function effectiveStop(row: BackfillRow, files: readonly PartitionFile[]): number {
  if (!Number.isFinite(row.untilMs)) return row.stopOffset;
  // Past the last event of an hour before `untilMs`, no event changes a window in range.
  let last = -1;
  for (const f of files) if (f.hourMs < row.untilMs) last = Math.max(last, f.lastOffset);
  return Math.min(row.stopOffset, last + 1);
}

/** What one chunk adds to a row. */
interface Work {
  readonly deltas: WindowDelta[];
  readonly dropped: DroppedValue[];
  readonly events: number;
}

class RowReplay {
  readonly #ctx: WorkerContext;
  readonly #row: BackfillRow;
  readonly #b: Bounds;
  #next: number;
  #position: store.Position;
  #lastLog = Date.now();

  constructor(ctx: WorkerContext, row: BackfillRow, bounds: Bounds) {
    this.#ctx = ctx;
    this.#row = row;
    this.#b = bounds;
    this.#next = row.nextOffset ?? 0;
    this.#position = { nextOffset: row.nextOffset, hash: row.hash };
  }

  async run(): Promise<Outcome> {
    const speed = this.#ctx.plan().speed;
    const replay = new PartitionReplay(
      [compileMetric(this.#row.definition)],
      { windowMs: speed.windowMs, allowedLatenessMs: speed.allowedLatenessMs },
      { fromMs: this.#row.fromMs, untilMs: this.#row.untilMs },
      this.#row.clockMs,
    );
    const { limit, stop, lake } = this.#b;
    if (this.#next < limit && (await this.#stream(replay)) === "stopped") {
      return { kind: "stopped" };
    }
    // Every lake event below `limit` is replayed: nothing more below it.
    const finished = limit >= stop;
    if (this.#next < limit || finished) {
      const empty = { deltas: [], dropped: [], events: 0 };
      await this.#commit(Math.max(this.#next, limit), replay.clockMs, empty, finished);
    }
    if (finished) return { kind: "finished" };
    return {
      kind: "waiting",
      lag: { partition: this.#row.partition, lakeOffset: lake, stopOffset: stop },
    };
  }

  /** Streams the lake's events from the row's position up to the limit, a chunk a transaction. */
  async #stream(replay: PartitionReplay): Promise<"stopped" | "read"> {
    const ctx = this.#ctx;
    const stream = streamPartition(ctx.store, {
      partition: this.#row.partition,
      files: this.#b.files,
      startOffset: this.#next,
      stopOffset: this.#b.limit,
      sliceRows: ctx.chunkEvents,
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
      await this.#commit(to, replay.clockMs, { ...replay.take(), events: c.rows }, false);
      this.#logProgress();
      if (ctx.stopping()) return "stopped";
      await sleep(Math.max(1, (performance.now() - t0) * ctx.restRatio));
    }
    return "read";
  }

  /** Writes a chunk's windows and the row's new position in one transaction. */
  async #commit(to: number, clockMs: number, work: Work, finished: boolean): Promise<void> {
    const { db, topic, holder, leaseMs, telemetry } = this.#ctx;
    const row = this.#row;
    const windowMs = this.#ctx.plan().speed.windowMs;
    const aggs = new Map([[row.metric, row.definition.aggregation]]);
    await db.transaction(async (tx) => {
      await store.checkPosition(tx, row, holder.id, this.#position);
      await writeWindowDeltas(tx, topic, windowMs, aggs, row.partition, work.deltas, work.dropped);
      await store.advance(tx, row, {
        nextOffset: to,
        clockMs,
        startOffset: this.#b.startOffset,
        events: work.events,
        rows: work.deltas.length,
        leaseMs,
        finished,
      });
    });
    this.#position = { nextOffset: to, hash: row.hash };
    this.#next = to;
    this.#ctx.committed();
    telemetry.events.inc({ metric: row.metric }, work.events);
    telemetry.rows.inc({ metric: row.metric }, work.deltas.length);
    this.#ctx.onProgress?.({
      metric: row.metric,
      partition: row.partition,
      nextOffset: this.#next,
      stopOffset: this.#b.stop,
      startOffset: this.#b.startOffset,
      finished,
    });
  }

  #logProgress(): void {
    if (Date.now() - this.#lastLog < this.#ctx.progressEveryMs) return;
    this.#lastLog = Date.now();
    const { startOffset, stop } = this.#b;
    this.#ctx.log.info("backfill progress", {
      metric: this.#row.metric,
      partition: this.#row.partition,
      offset: this.#next,
      stop,
      percent: percent(startOffset, this.#next, stop),
    });
  }
}
