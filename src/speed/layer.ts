/**
 * The speed layer's event loop: a thin shell of I/O around the pure core.
 * Each batch is validated message by message; valid events go to the
 * partition's `PartitionWindows` (deltas only) and to the lake writer, bad
 * ones become dead letters. A flush loop (every flushIntervalMs, sooner when a
 * window closes, back to back while behind) writes the deltas, dead letters
 * and offset of each partition in one PostgreSQL transaction (one per
 * partition, concurrently, on a server), then commits to Kafka the lower of
 * what PostgreSQL and the lake hold durably. Consumption goes on while a
 * flush is in flight; a partition waits only when it has changed more than
 * maxDirtyRows rows since, until the next flush takes them. Replays below the
 * stored next offset update the lake only, so nothing is counted twice; sink
 * faults are retried with the source paused.
 */
import type { Plan } from "../config/plan.ts";
import { compileMetric } from "../core/metric.ts";
import { PartitionWindows } from "../core/partition_windows.ts";
import { partitionCompleteMs } from "../core/completeness.ts";
import type { SourcedEvent } from "../core/event.ts";
import { validateMessage } from "../core/validate.ts";
import { HOUR_MS, hourStart, windowStart } from "../core/window.ts";
import type { Db } from "../db/db.ts";
import type { DeadLetter, DeadLetterSink, EventSource, SourceBatch } from "../kafka/source.ts";
import type { Logger } from "../log.ts";
import type { CompactHour, SpeedLake } from "./lake_port.ts";
import type { FlushParticipant } from "./participant.ts";
import { LakeTrail } from "./lake_trail.ts";
import { type RetryHooks, retrying } from "./retry.ts";
import {
  type Aggregations,
  type PartitionFlush,
  readProgress,
  recordTopic,
  upsertMetrics,
  writeFlush,
} from "./sink.ts";
import type { SpeedTelemetry } from "./telemetry.ts";
import { WrittenRows } from "./written_rows.ts";

/** What `status()` says about one owned partition. */
export interface PartitionStatus {
  readonly partition: number;
  /** Event-time clock and watermark, epoch ms (null before the first event). */
  readonly clockMs: number | null;
  readonly watermarkMs: number | null;
  /** Next offset to be read by this instance. */
  readonly nextOffset: number;
  /** Next offset applied in PostgreSQL. */
  readonly storedOffset: number;
  /** Next offset committed to Kafka (-1 before the first commit). */
  readonly committedOffset: number;
  /** Messages behind the partition's end, as of the last batch. */
  readonly lag: number;
}

export interface SpeedStatus {
  readonly running: boolean;
  /** Sinks currently failing (postgres, lake, dead-letter topic). */
  readonly sinksDown: readonly string[];
  readonly partitions: readonly PartitionStatus[];
  readonly counters: {
    readonly consumed: number;
    readonly valid: number;
    readonly deadLetters: number;
    readonly lateUpdated: number;
    readonly lateDropped: number;
    readonly windowsWritten: number;
    readonly flushes: number;
  };
}

export interface LayerDeps {
  readonly plan: Plan;
  readonly db: Db;
  readonly lake: SpeedLake;
  /** Hour compaction; undefined = off. */
  readonly compactHour?: CompactHour;
  /** Hours of a partition whose compaction a crash cut short (compacted again on assignment). */
  readonly unfinishedCompactions?: (partition: number) => Promise<number[]>;
  readonly source: EventSource;
  readonly deadLetters?: DeadLetterSink;
  readonly log: Logger;
  readonly clock: () => number;
  readonly topic: string;
  readonly telemetry: SpeedTelemetry;
  /** Called after a flush that made a partition's lake complete past another hour's end. */
  readonly onLakeHour?: () => void;
  /** Ride along the flushes (participant.ts). */
  readonly participants?: readonly FlushParticipant[];
}

/** State of one owned partition. */
class PartitionState {
  /** Next offset to process (messages below were seen in this session). */
  next = 0;
  /** Next offset applied in PostgreSQL (everything below is counted). */
  stored: number;
  storedClock: number;
  committed = -1;
  highWatermark = -1;
  lastEventWall: number;
  letters: DeadLetter[] = [];
  /** Starts of windows holding data that the watermark has not passed yet. */
  open = new Set<number>();
  /** Hours (epoch ms) with events appended to the lake and not compacted yet. */
  hours = new Set<number>();
  lastHour = NaN;
  /** Partial rows PostgreSQL may hold, so new ones are inserted rather than upserted. */
  readonly written: WrittenRows;
  /** The lake's completeness and changed hours, as the next flush records them. */
  readonly trail: LakeTrail;
  /** What PostgreSQL holds of the lake's progress (a flush with no change skips it). */
  storedLake: number;
  storedLakeClock: number;
  storedCaughtUp: number;

  constructor(
    readonly partition: number,
    readonly windows: PartitionWindows,
    /** Offsets below were applied before this session: lake only. */
    readonly skipBelow: number,
    now: number,
    restored?: { lakeOffset: number; lakeClockMs: number; caughtUpMs: number },
  ) {
    this.stored = skipBelow;
    this.storedClock = windows.clockMs;
    this.lastEventWall = now;
    this.written = new WrittenRows(windows.clockMs, windows.options.windowMs);
    this.storedLake = restored?.lakeOffset ?? -1;
    this.storedLakeClock = restored?.lakeClockMs ?? -Infinity;
    this.storedCaughtUp = restored?.caughtUpMs ?? -Infinity;
    this.trail = new LakeTrail(this.storedLakeClock, this.storedCaughtUp);
  }

  /** The earliest open window has been passed by the watermark. */
  hasClosedWindow(windowMs: number): boolean {
    const wm = this.windows.watermarkMs;
    for (const s of this.open) if (s + windowMs <= wm) return true;
    return false;
  }
}

const EARLY_FLUSH_MIN_MS = 50;
/**
 * How often the end of every partition's log is read, so a quiet, fully
 * consumed partition keeps counting as complete (src/core/completeness.ts):
 * the idle timeout, at most 5 s.
 */
const END_POLL_MAX_MS = 5_000;

export class Layer {
  readonly #d: LayerDeps;
  readonly #metrics;
  readonly #aggs: Aggregations;
  readonly #parts = new Map<number, PartitionState>();
  readonly #down = new Set<string>();
  readonly #hooks: RetryHooks;
  #running = false;
  #stopping = false;
  #abortAt = Infinity;
  #flushChain: Promise<void> = Promise.resolve();
  #lakeChain: Promise<unknown> = Promise.resolve();
  #compactChain: Promise<void> = Promise.resolve();
  #wake: (() => void) | undefined;
  #flushRequested = false;
  /** Batches waiting for the next flush to take their partition's dirty rows. */
  #takeWaiters: (() => void)[] = [];
  /** A flush met rows it took for new: every row is upserted from then on. */
  #upsertOnly = false;
  #lastFlush = 0;
  #loop: Promise<void> | undefined;
  #idleTimer: ReturnType<typeof setInterval> | undefined;
  #endTimer: ReturnType<typeof setInterval> | undefined;
  #polling = false;
  /** Partitions of the topic as last recorded in speed_topics. */
  #topicPartitions = 0;
  #counters = {
    consumed: 0,
    valid: 0,
    deadLetters: 0,
    lateUpdated: 0,
    lateDropped: 0,
    windowsWritten: 0,
    flushes: 0,
  };
  #resolveDone!: () => void;
  readonly done: Promise<void>;

  constructor(deps: LayerDeps) {
    this.#d = deps;
    this.#metrics = deps.plan.speed.metrics.map(compileMetric);
    this.#aggs = new Map(deps.plan.speed.metrics.map((m) => [m.name, m.aggregation]));
    this.done = new Promise((r) => this.#resolveDone = r);
    this.#hooks = {
      log: deps.log,
      onDown: (sink) => {
        this.#down.add(sink);
        deps.source.pause();
      },
      onUp: (sink) => {
        this.#down.delete(sink);
        if (this.#down.size === 0 && !this.#stopping) deps.source.resume();
      },
      onRetry: (sink) => deps.telemetry.sinkRetries.inc({ sink }),
      aborted: () => Date.now() >= this.#abortAt,
    };
  }

  async start(): Promise<void> {
    const d = this.#d;
    await retrying("postgres", this.#hooks, () => upsertMetrics(d.db, d.plan.speed));
    this.#running = true;
    this.#loop = this.#flushLoop();
    const idleEvery = Math.max(50, Math.min(1_000, d.plan.speed.idleTimeoutMs / 4));
    this.#idleTimer = setInterval(() => this.#checkIdle(), idleEvery);
    await d.source.start({
      onBatch: (b) => this.#onBatch(b),
      onAssign: (p) => this.#onAssign(p),
      onRevoke: (p) => this.#onRevoke(p),
    });
    await this.#pollEnds();
    this.#endTimer = setInterval(
      () => void this.#pollEnds(),
      Math.min(END_POLL_MAX_MS, d.plan.speed.idleTimeoutMs),
    );
    d.log.info("speed layer started", {
      topic: d.topic,
      source: d.source.kind,
      metrics: d.plan.speed.metrics.map((m) => m.name),
      windowMs: d.plan.speed.windowMs,
    });
  }

  // ---- source handlers -------------------------------------------------------

  async #onAssign(partitions: readonly number[]): Promise<Map<number, number>> {
    const d = this.#d;
    const progress = await retrying(
      "postgres",
      this.#hooks,
      () => readProgress(d.db, d.topic, partitions),
    );
    const starts = new Map<number, number>();
    const opts = {
      windowMs: d.plan.speed.windowMs,
      allowedLatenessMs: d.plan.speed.allowedLatenessMs,
    };
    for (const p of partitions) {
      const pr = progress.get(p);
      const windows = new PartitionWindows(this.#metrics, opts, pr?.clockMs ?? -Infinity);
      const st = new PartitionState(p, windows, pr?.nextOffset ?? 0, d.clock(), pr);
      if (pr) {
        // Resume where both sinks are durable: PostgreSQL replays are skipped,
        // the lake rewrites what a crash left unfinished.
        const resume = Math.min(pr.nextOffset, pr.lakeOffset);
        st.next = resume;
        starts.set(p, resume);
      }
      // Without progress nothing of this partition was applied yet: whatever
      // the lake holds beyond the last commit is an orphan, replayed anyway.
      const resume = pr ? Math.min(pr.nextOffset, pr.lakeOffset) : 0;
      await this.#lake("lake", () => d.lake.recover(p, resume));
      this.#parts.set(p, st);
      const unfinished = d.unfinishedCompactions;
      if (unfinished && d.compactHour && d.plan.lake.compaction.enabled) {
        for (const hour of await retrying("lake", this.#hooks, () => unfinished(p))) {
          d.log.info("lake compaction cut short by a crash: compacting again", {
            hour: new Date(hour).toISOString(),
            partition: p,
          });
          this.#compact(hour, p);
        }
      }
    }
    d.log.info("speed partitions assigned", { partitions, starts: Object.fromEntries(starts) });
    return starts;
  }

  async #onRevoke(partitions: readonly number[]): Promise<void> {
    const d = this.#d;
    const mine = partitions.filter((p) => this.#parts.has(p));
    if (mine.length === 0) return;
    for (const p of mine) await this.#lake("lake", () => d.lake.flush(p));
    await this.flushNow();
    for (const p of mine) {
      this.#parts.delete(p);
      for (const x of d.participants ?? []) x.release?.(p);
      await this.#lake("lake", () => d.lake.release(p));
    }
    d.log.info("speed partitions revoked", { partitions: mine });
  }

  async #onBatch(batch: SourceBatch): Promise<void> {
    const st = this.#parts.get(batch.partition);
    if (!st) return;
    const d = this.#d;
    const t = d.telemetry;
    const schema = d.plan.schema;
    const now = d.clock();
    const windows = st.windows;
    const windowMs = d.plan.speed.windowMs;
    const participants = d.participants ?? [];
    const events: SourcedEvent[] = [];
    let consumed = 0, valid = 0, lateUpdated = 0, lateDropped = 0;
    for (const msg of batch.messages) {
      if (msg.offset < st.next) continue; // delivered again in this session
      consumed++;
      const v = validateMessage(msg.value, schema, now);
      if (v.ok) {
        valid++;
        const e = v.event;
        const ev: SourcedEvent = {
          bytes: e.bytes,
          timestamp: e.timestamp,
          app: e.app,
          id: e.id,
          antenna_id: e.antenna_id,
          partition: msg.partition,
          offset: msg.offset,
        };
        events.push(ev);
        st.trail.event(msg.offset, e.timestamp * 1000);
        const hour = hourStart(e.timestamp * 1000);
        if (hour !== st.lastHour) {
          st.hours.add(hour);
          st.lastHour = hour;
        }
        if (msg.offset >= st.skipBelow) {
          for (const p of participants) p.event(ev);
          const lateness = windows.add(ev);
          if (lateness === "on_time") st.open.add(windowStart(e.timestamp * 1000, windowMs));
          else if (lateness === "late_updated") lateUpdated++;
          else lateDropped++;
        }
      } else if (msg.offset >= st.skipBelow) {
        // Copies: the source's bytes are views of a whole fetch response (MiBs),
        // which a held view would keep alive until the next flush.
        st.letters.push({
          partition: msg.partition,
          offset: msg.offset,
          key: msg.key && new Uint8Array(msg.key),
          value: msg.value && new Uint8Array(msg.value),
          reason: v.reason,
          detail: v.detail,
        });
        t.deadLetters.inc({ reason: v.reason });
        this.#counters.deadLetters++;
      }
      st.next = msg.offset + 1;
    }
    st.trail.mark(st.next);
    if (consumed) st.lastEventWall = now;
    this.#counters.consumed += consumed;
    this.#counters.valid += valid;
    this.#counters.lateUpdated += lateUpdated;
    this.#counters.lateDropped += lateDropped;
    t.consumed.inc(undefined, consumed);
    t.valid.inc(undefined, valid);
    if (lateUpdated) t.lateUpdated.inc(undefined, lateUpdated);
    if (lateDropped) t.lateDropped.inc(undefined, lateDropped);
    st.highWatermark = batch.highWatermark;
    t.lag.set(Math.max(0, batch.highWatermark - st.next), { partition: st.partition });
    if (Number.isFinite(windows.watermarkMs)) {
      t.watermark.set(windows.watermarkMs / 1000, { partition: st.partition });
    }
    if (events.length) d.lake.append(events);
    d.lake.advance(st.partition, st.next);
    if (st.hasClosedWindow(windowMs)) this.#requestFlush();
    // A held batch keeps its partitions: kafkajs heartbeats from its fetch loop
    // meanwhile (tests/speed_heartbeat_test.ts holds one past the session timeout).
    await this.#dirtyBackpressure(st);
    await this.#lakeBackpressure(st.partition);
  }

  // ---- flushing --------------------------------------------------------------

  /**
   * Bounds memory when PostgreSQL is slower than Kafka (catching up): past
   * maxDirtyRows, this partition's fetches wait until the next flush takes its
   * rows, not until it is written, so consuming and writing overlap. Changes
   * to a row merge in memory meanwhile, so bigger flushes write fewer rows.
   */
  async #dirtyBackpressure(st: PartitionState): Promise<void> {
    const max = this.#d.plan.speed.maxDirtyRows;
    while (
      st.windows.dirtyRows > max && !this.#stopping && this.#parts.get(st.partition) === st
    ) {
      this.#requestFlush();
      await new Promise<void>((resolve) => this.#takeWaiters.push(resolve));
    }
  }

  #releaseTakeWaiters(): void {
    const waiters = this.#takeWaiters;
    this.#takeWaiters = [];
    for (const resolve of waiters) resolve();
  }

  #requestFlush(): void {
    this.#flushRequested = true;
    this.#wake?.();
  }

  async #flushLoop(): Promise<void> {
    const every = this.#d.plan.speed.flushIntervalMs;
    while (this.#running) {
      await new Promise<void>((resolve) => {
        const wait = this.#flushRequested
          ? Math.max(0, this.#lastFlush + EARLY_FLUSH_MIN_MS - Date.now())
          : Math.max(0, this.#lastFlush + every - Date.now());
        const timer = setTimeout(done, wait);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#wake = done;
      });
      this.#wake = undefined;
      if (!this.#running) break;
      try {
        await this.flushNow();
      } catch (err) {
        if (!this.#stopping) this.#d.log.error("speed flush failed", { error: err });
      }
    }
  }

  /** Flushes everything held (serialised with other flushes). */
  flushNow(): Promise<void> {
    const next = this.#flushChain.then(() => this.#flushOnce());
    this.#flushChain = next.catch(() => {});
    return next;
  }

  async #flushOnce(): Promise<void> {
    const d = this.#d;
    this.#flushRequested = false;
    this.#lastFlush = Date.now();
    const windowMs = d.plan.speed.windowMs;
    // Age-based rolls first, so the lake offsets recorded below are fresh.
    d.lake.tick();
    const snap: { st: PartitionState; part: PartitionFlush }[] = [];
    const lateness = d.plan.speed.allowedLatenessMs;
    for (const st of this.#parts.values()) {
      const taken = st.windows.takeDeltas();
      const { upserts: deltas, inserts } = this.#upsertOnly
        ? { upserts: taken, inserts: [] }
        : st.written.split(taken);
      // The watermark of the take: windows it passed by the lateness get no more deltas.
      st.written.prune(st.windows.watermarkMs, lateness);
      const letters = st.letters;
      st.letters = [];
      const nextOffset = Math.max(st.next, st.stored);
      const clockMs = st.windows.clockMs;
      const lakeOffset = Math.min(nextOffset, d.lake.durableOffset(st.partition) ?? st.stored);
      const lake = st.trail.take(lakeOffset);
      const dropped = st.windows.takeDropped();
      const writes = (d.participants ?? []).flatMap((p) => p.take(st.partition) ?? []);
      if (
        deltas.length === 0 && inserts.length === 0 && letters.length === 0 &&
        nextOffset === st.stored && clockMs === st.storedClock && lakeOffset === st.storedLake &&
        lake.clockMs === st.storedLakeClock && lake.caughtUpMs === st.storedCaughtUp &&
        lake.hours.length === 0 && dropped.length === 0 && writes.length === 0
      ) continue;
      snap.push({
        st,
        part: {
          partition: st.partition,
          deltas,
          inserts,
          letters,
          nextOffset,
          lakeOffset,
          clockMs,
          watermarkMs: st.windows.watermarkMs,
          lakeClockMs: lake.clockMs,
          caughtUpMs: lake.caughtUpMs,
          lakeHours: lake.hours,
          dropped,
          writes,
        },
      });
    }
    this.#releaseTakeWaiters();
    if (snap.length > 0) {
      const letters = snap.flatMap((s) => s.part.letters);
      const dlq = d.deadLetters;
      if (letters.length > 0 && dlq) {
        await retrying("dead-letter topic", this.#hooks, () => dlq.send(letters));
      }
      const parts = snap.map((s) => s.part);
      // A transaction per partition, concurrently on a server: each holds its
      // partition's rows with its offset, so each may commit alone, and a 2-core
      // machine writes about 1.3x as many rows per second as with one. PGlite
      // runs statements one at a time anyway: one transaction.
      const pending = new Set(d.db.kind === "postgres" ? parts.map((p) => [p]) : [parts]);
      let insertedNew = true;
      await retrying("postgres", this.#hooks, async () => {
        const results = await Promise.allSettled([...pending].map(async (group) => {
          if (!await writeFlush(d.db, d.topic, windowMs, this.#aggs, group)) insertedNew = false;
          pending.delete(group);
        }));
        const failed = results.find((r) => r.status === "rejected");
        if (failed) throw (failed as PromiseRejectedResult).reason;
      });
      if (!insertedNew) {
        // Rows this layer did not write (another topic on the same partitions?):
        // stop guessing for this session.
        this.#upsertOnly = true;
        d.log.warn("speed flush met stored rows it took for new; upserting only from now on", {
          partitions: parts.map((p) => p.partition),
        });
      }
      d.log.debug("speed flush", {
        partitions: parts.length,
        upserts: parts.reduce((n, p) => n + p.deltas.length, 0),
        inserts: parts.reduce((n, p) => n + (p.inserts?.length ?? 0), 0),
        ms: Date.now() - this.#lastFlush,
      });
      this.#counters.flushes++;
      d.telemetry.flushes.inc();
      let lakeHour = false;
      for (const { st, part } of snap) {
        lakeHour ||= this.#lakeHour(st.storedLakeClock, st.storedCaughtUp) <
          this.#lakeHour(part.lakeClockMs!, part.caughtUpMs!);
        st.stored = part.nextOffset;
        st.storedClock = part.clockMs;
        st.storedLake = part.lakeOffset;
        st.storedLakeClock = part.lakeClockMs!;
        st.storedCaughtUp = part.caughtUpMs!;
        let written = 0;
        for (const s of st.open) {
          if (s + windowMs <= part.watermarkMs) {
            st.open.delete(s);
            written++;
          }
        }
        if (written) {
          this.#counters.windowsWritten += written;
          d.telemetry.windowsWritten.inc(undefined, written);
        }
      }
      if (lakeHour) d.onLakeHour?.();
      for (const { part } of snap) for (const w of part.writes ?? []) w.committed?.();
    }
    await this.#commit();
    this.#scheduleCompaction();
  }

  /** The hour a partition's lake is complete into (src/core/completeness.ts), for onLakeHour. */
  #lakeHour(lakeClockMs: number, caughtUpMs: number): number {
    const lateness = this.#d.plan.speed.allowedLatenessMs;
    const complete = partitionCompleteMs({ partition: 0, lakeClockMs, caughtUpMs }, lateness);
    return Number.isFinite(complete) ? hourStart(complete - lateness) : -Infinity;
  }

  async #commit(): Promise<void> {
    const d = this.#d;
    const offsets = new Map<number, number>();
    for (const st of this.#parts.values()) {
      const off = Math.min(st.stored, d.lake.durableOffset(st.partition) ?? st.stored);
      if (off > st.committed) offsets.set(st.partition, off);
    }
    if (offsets.size === 0) return;
    await retrying("kafka commit", this.#hooks, () => d.source.commit(offsets));
    for (const [p, off] of offsets) {
      const st = this.#parts.get(p);
      if (st) st.committed = off;
      d.telemetry.committedOffset.set(off, { partition: p });
      d.lake.markCommitted(p, off);
    }
  }

  /**
   * Holds the batch while the lake has much more than a segment in flight: the
   * store is slow or down (the writer retries on its own). The source is
   * paused meanwhile, so consumption resumes only when files are written.
   */
  async #lakeBackpressure(partition: number): Promise<void> {
    const d = this.#d;
    // One segment being written plus a full open one; more means the store is behind.
    const limit = 2 * d.plan.lake.roll.maxRows + 20_000;
    if (d.lake.pendingRows(partition) <= limit) return;
    const t0 = Date.now();
    let paused = false;
    while (d.lake.pendingRows(partition) > limit && !this.#stopping) {
      if (!paused && Date.now() - t0 > 1_000) {
        paused = true;
        this.#hooks.onDown("lake");
        d.log.warn("lake unavailable, retrying", {
          partition,
          pending: d.lake.pendingRows(partition),
        });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (paused) {
      d.log.info("lake resumed", { partition });
      this.#hooks.onUp("lake");
    }
  }

  /** Serialises lake calls (appends, rolls, flushes) and retries their faults. */
  #lake<T>(sink: string, fn: () => Promise<T>): Promise<T> {
    const next = this.#lakeChain.then(() => retrying(sink, this.#hooks, fn));
    this.#lakeChain = next.catch(() => {});
    return next;
  }

  // ---- compaction and idleness -----------------------------------------------

  /** Compacts hours whose end the watermark passed by compaction.afterMs. */
  #scheduleCompaction(): void {
    const d = this.#d;
    const c = d.plan.lake.compaction;
    if (!c.enabled || !d.compactHour || this.#stopping) return;
    for (const st of this.#parts.values()) {
      const wm = st.windows.watermarkMs;
      for (const hour of st.hours) {
        if (hour + HOUR_MS + c.afterMs > wm) continue;
        st.hours.delete(hour);
        if (st.lastHour === hour) st.lastHour = NaN;
        this.#compact(hour, st.partition);
      }
    }
  }

  /** Queues the compaction of one partition's hour. */
  #compact(hour: number, p: number): void {
    const d = this.#d;
    const compact = d.compactHour!;
    this.#compactChain = this.#compactChain.then(async () => {
      if (this.#stopping) return;
      // Files of the hour must be whole, and recorded as durable in the
      // progress (so no restart replays into them), before they are merged.
      await this.#lake("lake", () => d.lake.flush(p));
      await this.flushNow();
      await this.#lake("lake", () => compact(hour, p));
      d.log.info("lake hour compacted", { hour: new Date(hour).toISOString(), partition: p });
    }).catch((error) => {
      d.log.error("lake compaction failed", { hour, partition: p, error });
    });
  }

  /**
   * Reads the end of every partition's log: how many partitions the topic
   * has (recorded once it changes) and, for the owned ones, an end that the
   * next flushes compare with the lake's durable offset. A failure only
   * delays completeness; the next poll tries again.
   */
  async #pollEnds(): Promise<void> {
    if (this.#polling || this.#stopping) return;
    this.#polling = true;
    const d = this.#d;
    try {
      const at = d.clock();
      const ends = await d.source.endOffsets();
      if (ends.size > 0 && ends.size !== this.#topicPartitions) {
        await recordTopic(d.db, d.topic, ends.size);
        this.#topicPartitions = ends.size;
      }
      for (const [p, end] of ends) this.#parts.get(p)?.trail.sawEnd(end, at);
    } catch (error) {
      d.log.debug("could not read the end of the source's partitions", { error });
    } finally {
      this.#polling = false;
    }
  }

  #checkIdle(): void {
    const d = this.#d;
    const now = d.clock();
    let closed = false;
    for (const st of this.#parts.values()) {
      if (now - st.lastEventWall < d.plan.speed.idleTimeoutMs) continue;
      if (st.windows.closeIdle()) {
        closed = true;
        d.log.debug("idle partition: open windows closed", { partition: st.partition });
      }
    }
    if (closed) this.#requestFlush();
  }

  // ---- lifecycle -------------------------------------------------------------

  /** Flushes the lake and PostgreSQL, commits, stops the source. Bounded by `deadlineMs`. */
  async stop(deadlineMs = 9_000): Promise<void> {
    if (this.#stopping) return await this.done;
    this.#stopping = true;
    this.#releaseTakeWaiters();
    this.#abortAt = Date.now() + deadlineMs;
    const d = this.#d;
    clearInterval(this.#idleTimer);
    clearInterval(this.#endTimer);
    try {
      d.source.pause();
      await this.#lake("lake", () => d.lake.flush());
      await this.flushNow();
      await this.#compactChain;
    } catch (error) {
      d.log.error("speed layer stopped without a final flush", { error });
    }
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    try {
      await d.source.stop();
    } catch (error) {
      d.log.error("source stop failed", { error });
    }
    d.log.info("speed layer stopped", { counters: this.#counters });
    this.#resolveDone();
  }

  status(): SpeedStatus {
    const partitions: PartitionStatus[] = [];
    for (const st of [...this.#parts.values()].sort((a, b) => a.partition - b.partition)) {
      const clock = st.windows.clockMs;
      partitions.push({
        partition: st.partition,
        clockMs: Number.isFinite(clock) ? clock : null,
        watermarkMs: Number.isFinite(clock) ? st.windows.watermarkMs : null,
        nextOffset: st.next,
        storedOffset: st.stored,
        committedOffset: st.committed,
        lag: st.highWatermark < 0 ? 0 : Math.max(0, st.highWatermark - st.next),
      });
    }
    return {
      running: this.#running && !this.#stopping,
      sinksDown: [...this.#down],
      partitions,
      counters: { ...this.#counters },
    };
  }
}
