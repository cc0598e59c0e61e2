/**
 * The rolling lake writer of the speed layer. Events of each Kafka partition
 * accumulate in an open roll segment, cut when it reaches `maxRows` rows or
 * `maxBytes` estimated bytes (checked on every event, so these cuts depend only
 * on the event sequence and a replay cuts at the same offsets) or `maxAgeMs`
 * (checked by `tick()`, from the injected clock). A cut segment is written in
 * the background: one Parquet file per event hour, all named after the
 * segment's offsets, preceded by an intent record (see intent.ts). Writes of
 * one partition run one after another, so `durableOffset` only ever moves
 * forward over whole segments; a failed write is retried with backoff until
 * it succeeds or the writer is aborted, and `pendingRows()` lets the consumer
 * pause meanwhile.
 *
 * Segments are buffered as columns (typed arrays for numbers, arrays of
 * strings, low-cardinality strings shared), not as the appended event
 * objects: those die young instead of filling the old generation, which
 * roughly halves the heap a catching-up consumer holds.
 */
import { retry } from "../async/retry.ts";
import { Serial } from "../async/serial.ts";
import type { LakePlan } from "../config/plan.ts";
import type { SourcedEvent } from "../core/event.ts";
import { log as rootLog, type Logger } from "../log.ts";
import { type Registry, registry as rootRegistry } from "../metrics.ts";
import {
  allocColumns,
  encodeColumns,
  estimateEventBytes,
  type EventColumns,
  pickRows,
} from "./format.ts";
import { readIntent, type SegmentIntent, writeIntent } from "./intent.ts";
import { hourPath, segmentFileName } from "./paths.ts";
import { hourStart } from "../core/window.ts";
import type { ObjectStore } from "./store.ts";

export interface LakeWriterOptions {
  readonly store: ObjectStore;
  readonly roll: LakePlan["roll"];
  /** Epoch-ms clock for the age-based roll. Default `Date.now`. */
  readonly clock?: () => number;
  /** Default: the process logger with `component: "lake"`. */
  readonly log?: Logger;
  /** Default: the process registry. */
  readonly registry?: Registry;
  /** Backoff of a failed store call: first delay and cap, ms. Default 200 and 5000. */
  readonly retry?: { readonly initialMs: number; readonly maxMs: number };
}

/** Rows of one segment as growing columns. */
class SegmentColumns {
  cols: EventColumns;
  rows = 0;

  constructor(capacity: number) {
    this.cols = allocColumns(capacity);
  }

  push(e: SourcedEvent, antenna: string, app: string): void {
    if (this.rows === this.cols.offset.length) this.#grow();
    const c = this.cols, i = this.rows++;
    c.timestamp[i] = Math.round(e.timestamp * 1000);
    c.id[i] = e.id;
    c.antenna_id[i] = antenna;
    c.app[i] = app;
    c.bytes[i] = e.bytes;
    c.partition[i] = e.partition;
    c.offset[i] = e.offset;
  }

  #grow(): void {
    const old = this.cols;
    const c = allocColumns(Math.max(1_024, old.offset.length * 2));
    c.timestamp.set(old.timestamp);
    c.bytes.set(old.bytes);
    c.partition.set(old.partition);
    c.offset.set(old.offset);
    for (let i = 0; i < this.rows; i++) {
      c.id[i] = old.id[i];
      c.antenna_id[i] = old.antenna_id[i];
      c.app[i] = old.app[i];
    }
    this.cols = c;
  }
}

interface OpenSegment {
  readonly rows: SegmentColumns;
  readonly first: number;
  bytes: number;
  readonly openedAt: number;
}

interface Job {
  readonly first: number;
  readonly last: number;
  readonly rows: SegmentColumns;
  /** Every offset below this is durable once the job is done. */
  readonly upTo: number;
}

/** Distinct strings kept for sharing before the table starts over. */
const SHARED_STRINGS_MAX = 10_000;

interface PartitionState {
  readonly partition: number;
  open?: OpenSegment;
  /** Next offset expected: events below it were seen already (replays) and are skipped. */
  next?: number;
  /** Every offset below this is in a durable file or was never a lake row. */
  durable?: number;
  /** Segments written since the last known commit (the intent file's content). */
  intents: SegmentIntent[];
  committed?: number;
  /** The partition's writes, one after another; none rejects (errors go to `failed`). */
  readonly writes: Serial;
  queued: number;
  queuedRows: number;
  failed?: Error;
}

export class LakeWriterAbortedError extends Error {
  constructor() {
    super("Lake writer was aborted before the segment was durable");
    this.name = "LakeWriterAbortedError";
  }
}

export class LakeWriter {
  readonly #store: ObjectStore;
  #roll: LakePlan["roll"];
  readonly #clock: () => number;
  readonly #log: Logger;
  readonly #retry: { initialMs: number; maxMs: number };
  readonly #parts = new Map<number, PartitionState>();
  readonly #abort = new AbortController();
  readonly #m;
  /** One copy of each antenna id and app, shared by all rows that hold it. */
  #shared = new Map<string, string>();

  constructor(options: LakeWriterOptions) {
    this.#store = options.store;
    this.#roll = options.roll;
    this.#clock = options.clock ?? Date.now;
    this.#log = options.log ?? rootLog.child({ component: "lake" });
    this.#retry = { initialMs: 200, maxMs: 5000, ...options.retry };
    const r = options.registry ?? rootRegistry;
    this.#m = {
      files: r.counter("lake_files_written_total", "Parquet files written to the lake"),
      rows: r.counter("lake_rows_written_total", "Rows written to the lake"),
      bytes: r.counter("lake_bytes_written_total", "Bytes of Parquet written to the lake"),
      retries: r.counter("lake_write_retries_total", "Failed lake store calls, retried"),
      skipped: r.counter(
        "lake_events_skipped_total",
        "Replayed events skipped because a durable lake file holds them",
      ),
      seconds: r.histogram("lake_segment_write_seconds", "Encode and upload time of a segment"),
      pending: r.gauge("lake_pending_rows", "Rows buffered or being written, per partition"),
    };
  }

  /**
   * Makes the lake consistent for a partition just assigned, consumption
   * resuming at `resumeOffset` (the committed offset): files of segments
   * starting at or after it are deleted (the replay rewrites them, perhaps cut
   * elsewhere), and a segment straddling it is kept, its replayed events
   * skipped. Call before the partition's first `append`.
   */
  async recover(partition: number, resumeOffset: number): Promise<void> {
    const old = this.#parts.get(partition);
    if (old && (old.open || old.queued > 0)) {
      throw new Error(`recover(${partition}) called with unflushed events`);
    }
    const segments = await readIntent(this.#store, partition);
    const keep: SegmentIntent[] = [];
    let next = resumeOffset;
    for (const s of segments) {
      if (s.last < resumeOffset) continue; // committed: no longer needed
      if (s.first >= resumeOffset) {
        for (const key of s.keys) await this.#store.delete(key);
        this.#log.info("lake segment rolled back for replay", {
          partition,
          first: s.first,
          last: s.last,
          files: s.keys.length,
        });
      } else {
        keep.push(s);
        next = Math.max(next, s.last + 1);
      }
    }
    // Deletions first: if we crash in between, the old intent still names them.
    await writeIntent(this.#store, partition, keep);
    this.#parts.set(partition, {
      partition,
      next,
      durable: next,
      intents: keep,
      committed: resumeOffset,
      writes: new Serial(),
      queued: 0,
      queuedRows: 0,
    });
  }

  #state(partition: number): PartitionState {
    let s = this.#parts.get(partition);
    if (!s) {
      // No recover(): nothing is known about earlier runs' segments.
      s = { partition, intents: [], writes: new Serial(), queued: 0, queuedRows: 0 };
      this.#parts.set(partition, s);
    }
    return s;
  }

  /**
   * Buffers valid events (of one partition, in offset order). Events below an
   * offset already seen (a replay of a kept segment) are skipped.
   */
  append(events: readonly SourcedEvent[]): void {
    if (this.#abort.signal.aborted) throw new LakeWriterAbortedError();
    const { maxRows, maxBytes } = this.#roll;
    let s: PartitionState | undefined;
    let skipped = 0;
    for (const e of events) {
      if (!s || s.partition !== e.partition) s = this.#state(e.partition);
      if (s.next !== undefined && e.offset < s.next) {
        skipped++;
        continue;
      }
      s.next = e.offset + 1;
      s.open ??= {
        rows: new SegmentColumns(Math.min(maxRows, 16_384)),
        first: e.offset,
        bytes: 0,
        openedAt: this.#clock(),
      };
      s.open.rows.push(e, this.#share(e.antenna_id), this.#share(e.app));
      s.open.bytes += estimateEventBytes(e);
      if (s.open.rows.rows >= maxRows || s.open.bytes >= maxBytes) this.#cut(s);
    }
    if (skipped) this.#m.skipped.inc(undefined, skipped);
    if (s) this.#gauge(s);
  }

  #share(v: string): string {
    const known = this.#shared.get(v);
    if (known !== undefined) return known;
    if (this.#shared.size >= SHARED_STRINGS_MAX) this.#shared = new Map();
    this.#shared.set(v, v);
    return v;
  }

  /**
   * Records that every message of `partition` before `nextOffset` was consumed,
   * so `durableOffset` can move past messages that never reach the lake
   * (dead-lettered ones).
   */
  advance(partition: number, nextOffset: number): void {
    const s = this.#state(partition);
    if (s.next === undefined || nextOffset > s.next) s.next = nextOffset;
  }

  /** Rolls every segment older than `maxAgeMs` by the clock. */
  tick(): void {
    const now = this.#clock();
    for (const s of this.#parts.values()) {
      if (s.open && now - s.open.openedAt >= this.#roll.maxAgeMs) this.#cut(s);
    }
  }

  /**
   * The offset to commit for `partition`: every event before it is in a
   * durable lake file (or was not a lake row). Undefined before anything is known.
   */
  durableOffset(partition: number): number | undefined {
    const s = this.#parts.get(partition);
    if (!s) return undefined;
    if (s.queued > 0) return s.durable;
    if (s.open) return s.open.first;
    return s.next ?? s.durable;
  }

  /**
   * Rolls by these limits from now on (a live reload). An open segment
   * already past the new size is cut at its next event, one past the new age
   * at the next `tick()`.
   */
  reconfigure(roll: LakePlan["roll"]): void {
    this.#roll = roll;
  }

  /** Tells the writer Kafka holds this commit, so older intents can be forgotten. */
  markCommitted(partition: number, offset: number): void {
    const s = this.#parts.get(partition);
    if (s && (s.committed === undefined || offset > s.committed)) s.committed = offset;
  }

  /** Rows buffered or being written (all partitions, or one): for backpressure. */
  pendingRows(partition?: number): number {
    let n = 0;
    for (const s of this.#parts.values()) {
      if (partition === undefined || s.partition === partition) {
        n += (s.open?.rows.rows ?? 0) + s.queuedRows;
      }
    }
    return n;
  }

  /** Rolls the open segment(s) now and waits until they are durable (shutdown, revoke). */
  async flush(partition?: number): Promise<void> {
    for (const s of this.#parts.values()) {
      if (partition === undefined || s.partition === partition) this.#cut(s);
    }
    await this.drain(partition);
  }

  /** Waits for the writes in flight (not rolling anything). Rejects if one failed for good. */
  async drain(partition?: number): Promise<void> {
    const states = [...this.#parts.values()].filter((s) =>
      partition === undefined || s.partition === partition
    );
    await Promise.all(states.map((s) => s.writes.idle()));
    const failed = states.find((s) => s.failed);
    if (failed?.failed) throw failed.failed;
  }

  /** Flushes a revoked partition and forgets it. */
  async release(partition: number): Promise<void> {
    await this.flush(partition);
    this.#parts.delete(partition);
    this.#m.pending.set(0, { partition });
  }

  /**
   * Stops retrying and drops buffered events, as a crash would (tests, fatal
   * errors). Pending waits reject with `LakeWriterAbortedError`.
   */
  abort(): void {
    this.#abort.abort(new LakeWriterAbortedError());
    for (const s of this.#parts.values()) s.open = undefined;
  }

  #gauge(s: PartitionState): void {
    this.#m.pending.set((s.open?.rows.rows ?? 0) + s.queuedRows, { partition: s.partition });
  }

  #cut(s: PartitionState): void {
    const open = s.open;
    if (!open) return;
    s.open = undefined;
    const rows = open.rows;
    const last = rows.cols.offset[rows.rows - 1];
    const job: Job = { first: open.first, last, rows, upTo: s.next ?? last + 1 };
    s.queued++;
    s.queuedRows += rows.rows;
    void s.writes.run(async () => {
      if (s.failed) return; // a later segment must not become durable past a lost one
      try {
        await this.#write(s, job);
        s.durable = job.upTo;
      } catch (err) {
        s.failed = err as Error;
      } finally {
        s.queued--;
        s.queuedRows -= rows.rows;
        this.#gauge(s);
      }
    });
  }

  async #write(s: PartitionState, job: Job): Promise<void> {
    const started = performance.now();
    const name = segmentFileName(s.partition, job.first, job.last);
    const { cols, rows } = job.rows;
    const byHour = new Map<number, number[]>(); // hour → row numbers
    for (let i = 0; i < rows; i++) {
      const h = hourStart(cols.timestamp[i]);
      let list = byHour.get(h);
      if (!list) byHour.set(h, list = []);
      list.push(i);
    }
    const hours = [...byHour.keys()].sort((a, b) => a - b);
    const keys = hours.map((h) => hourPath(h) + name);
    const segment: SegmentIntent = { first: job.first, last: job.last, keys };
    const intents = [
      ...s.intents.filter((i) => s.committed === undefined || i.last >= s.committed),
      segment,
    ];
    await this.#retrying(
      "intent",
      s.partition,
      () => writeIntent(this.#store, s.partition, intents),
    );
    s.intents = intents;
    let bytes = 0;
    for (let i = 0; i < hours.length; i++) {
      const picked = byHour.get(hours[i])!;
      const file = hours.length === 1
        ? encodeColumns(cols, rows)
        : encodeColumns(pickRows(cols, picked), picked.length);
      bytes += file.length;
      await this.#retrying(keys[i], s.partition, () => this.#store.put(keys[i], file));
    }
    this.#m.files.inc(undefined, keys.length);
    this.#m.rows.inc(undefined, rows);
    this.#m.bytes.inc(undefined, bytes);
    this.#m.seconds.observe((performance.now() - started) / 1000);
    this.#log.debug("lake segment written", {
      partition: s.partition,
      first: job.first,
      last: job.last,
      rows,
      files: keys.length,
      bytes,
    });
  }

  async #retrying(what: string, partition: number, fn: () => Promise<void>): Promise<void> {
    await retry(async (attempt) => {
      await fn();
      // The line that says the store is back, even when the outage was too
      // short for the consumer to pause (and log it) on pendingRows().
      if (attempt > 1) {
        this.#log.info("lake write succeeded after retries", {
          what,
          partition,
          attempts: attempt,
        });
      }
    }, {
      ...this.#retry,
      signal: this.#abort.signal,
      onError: (error, attempt, retryInMs) => {
        this.#m.retries.inc();
        this.#log.warn("lake write failed, retrying", {
          what,
          partition,
          attempt,
          retryInMs,
          error,
        });
      },
    });
  }
}
