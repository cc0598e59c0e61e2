/**
 * The speed layer's event loop: a thin shell of I/O and timers around the
 * partitions' pure decisions (partition.ts). A batch from the source is
 * ingested by its partition; its valid events go to the lake writer. A flush
 * loop (every flushIntervalMs, sooner when a window closes, back to back while
 * behind) takes what each partition changed and writes it, with the
 * partition's offset, in one PostgreSQL transaction (sink.ts), then commits to
 * Kafka the lower of what PostgreSQL and the lake hold durably. Consumption
 * goes on while a flush is in flight; a partition waits only when it has
 * changed more than maxDirtyRows rows since, until the next flush takes them,
 * or when the lake falls behind. Sink faults are retried with the source
 * paused (retry.ts).
 */
import type { Plan } from "../config/plan.ts";
import { compileMetric } from "../core/metric.ts";
import type { Db } from "../db/db.ts";
import type { DeadLetterSink, EventSource, SourceBatch } from "../kafka/source.ts";
import type { Logger } from "../log.ts";
import type { CompactHour, SpeedLake } from "./lake_port.ts";
import type { FlushParticipant } from "./participant.ts";
import { type PartitionStatus, SpeedPartition } from "./partition.ts";
import { type RetryHooks, retrying } from "./retry.ts";
import {
  type Aggregations,
  flushWriter,
  type PartitionFlush,
  readProgress,
  recordTopic,
  upsertMetrics,
} from "./sink.ts";
import type { SpeedTelemetry } from "./telemetry.ts";

export type { PartitionStatus } from "./partition.ts";

export interface SpeedStatus {
  readonly running: boolean;
  /** Sinks currently failing (postgres, lake, dead-letter topic). */
  readonly sinksDown: readonly string[];
  readonly partitions: readonly PartitionStatus[];
  /** From the layer's telemetry (src/speed/telemetry.ts). */
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
  readonly #participants: readonly FlushParticipant[];
  readonly #parts = new Map<number, SpeedPartition>();
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
  #timers: ReturnType<typeof setInterval>[] = [];
  #polling = false;
  /** Partitions of the topic as last recorded in speed_topics. */
  #topicPartitions = 0;
  #resolveDone!: () => void;
  readonly done: Promise<void>;

  constructor(deps: LayerDeps) {
    this.#d = deps;
    this.#metrics = deps.plan.speed.metrics.map(compileMetric);
    this.#aggs = new Map(deps.plan.speed.metrics.map((m) => [m.name, m.aggregation]));
    this.#participants = deps.participants ?? [];
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
    const speed = d.plan.speed;
    await retrying("postgres", this.#hooks, () => upsertMetrics(d.db, speed));
    this.#running = true;
    this.#loop = this.#flushLoop();
    const idleEvery = Math.max(50, Math.min(1_000, speed.idleTimeoutMs / 4));
    this.#timers.push(setInterval(() => this.#checkIdle(), idleEvery));
    await d.source.start({
      onBatch: (b) => this.#onBatch(b),
      onAssign: (p) => this.#onAssign(p),
      onRevoke: (p) => this.#onRevoke(p),
    });
    await this.#pollEnds();
    const endEvery = Math.min(END_POLL_MAX_MS, speed.idleTimeoutMs);
    this.#timers.push(setInterval(() => void this.#pollEnds(), endEvery));
    d.log.info("speed layer started", {
      topic: d.topic,
      source: d.source.kind,
      metrics: speed.metrics.map((m) => m.name),
      windowMs: speed.windowMs,
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
      const st = new SpeedPartition(p, this.#metrics, opts, pr, d.clock());
      // Without progress nothing of this partition was applied yet: whatever
      // the lake holds beyond the last commit is an orphan, replayed anyway.
      if (pr) starts.set(p, st.resumeOffset);
      await this.#lake("lake", () => d.lake.recover(p, st.resumeOffset));
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
      for (const x of this.#participants) x.release?.(p);
      await this.#lake("lake", () => d.lake.release(p));
    }
    d.log.info("speed partitions revoked", { partitions: mine });
  }

  async #onBatch(batch: SourceBatch): Promise<void> {
    const st = this.#parts.get(batch.partition);
    if (!st) return;
    const d = this.#d;
    const t = d.telemetry;
    const r = st.ingest(batch.messages, batch.highWatermark, {
      schema: d.plan.schema,
      nowMs: d.clock(),
      participants: this.#participants,
    });
    t.consumed.inc(undefined, r.consumed);
    t.valid.inc(undefined, r.valid);
    if (r.lateUpdated) t.lateUpdated.inc(undefined, r.lateUpdated);
    if (r.lateDropped) t.lateDropped.inc(undefined, r.lateDropped);
    for (const reason of r.rejected) t.deadLetters.inc({ reason });
    t.lag.set(st.lag, { partition: st.partition });
    const wm = st.windows.watermarkMs;
    if (Number.isFinite(wm)) t.watermark.set(wm / 1000, { partition: st.partition });
    if (r.events.length) d.lake.append(r.events);
    d.lake.advance(st.partition, st.next);
    if (st.hasClosedWindow()) this.#requestFlush();
    // A held batch keeps its partitions: kafkajs heartbeats from its fetch loop
    // meanwhile (tests/speed_heartbeat_test.ts holds one past the session timeout).
    await this.#dirtyBackpressure(st);
    await this.#lakeBackpressure(st.partition);
  }

  // ---- backpressure ----------------------------------------------------------

  /**
   * Bounds memory when PostgreSQL is slower than Kafka (catching up): past
   * maxDirtyRows, this partition's fetches wait until the next flush takes its
   * rows, not until it is written, so consuming and writing overlap. Changes
   * to a row merge in memory meanwhile, so bigger flushes write fewer rows.
   */
  async #dirtyBackpressure(st: SpeedPartition): Promise<void> {
    const max = this.#d.plan.speed.maxDirtyRows;
    while (st.mustWait(max) && !this.#stopping && this.#parts.get(st.partition) === st) {
      this.#requestFlush();
      await new Promise<void>((resolve) => this.#takeWaiters.push(resolve));
    }
  }

  #releaseTakeWaiters(): void {
    const waiters = this.#takeWaiters;
    this.#takeWaiters = [];
    for (const resolve of waiters) resolve();
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

  // ---- flushing --------------------------------------------------------------

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
    // Age-based rolls first, so the lake offsets recorded below are fresh.
    d.lake.tick();
    const snap: { st: SpeedPartition; part: PartitionFlush }[] = [];
    const take = { upsertOnly: this.#upsertOnly, participants: this.#participants };
    for (const st of this.#parts.values()) {
      const part = st.take(d.lake.durableOffset(st.partition), take);
      if (part) snap.push({ st, part });
    }
    this.#releaseTakeWaiters();
    if (snap.length > 0) await this.#write(snap);
    await this.#commit();
    this.#scheduleCompaction();
  }

  /** Writes a flush's dead letters to the topic, then its partitions to PostgreSQL. */
  async #write(snap: { st: SpeedPartition; part: PartitionFlush }[]): Promise<void> {
    const d = this.#d;
    const parts = snap.map((s) => s.part);
    const letters = parts.flatMap((p) => p.letters);
    const dlq = d.deadLetters;
    if (letters.length > 0 && dlq) {
      await retrying("dead-letter topic", this.#hooks, () => dlq.send(letters));
    }
    const writer = flushWriter(d.db, d.topic, d.plan.speed.windowMs, this.#aggs, parts);
    await retrying("postgres", this.#hooks, () => writer.attempt());
    if (!writer.insertedNew && !this.#upsertOnly) {
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
    d.telemetry.flushes.inc();
    let lakeHour = false;
    for (const { st, part } of snap) {
      const w = st.written(part);
      lakeHour ||= w.lakeHour;
      if (w.windowsWritten) d.telemetry.windowsWritten.inc(undefined, w.windowsWritten);
    }
    if (lakeHour) d.onLakeHour?.();
    for (const p of parts) for (const w of p.writes ?? []) w.committed?.();
  }

  async #commit(): Promise<void> {
    const d = this.#d;
    const offsets = new Map<number, number>();
    for (const st of this.#parts.values()) {
      const off = st.commitOffset(d.lake.durableOffset(st.partition));
      if (off !== undefined) offsets.set(st.partition, off);
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

  /** Serialises lake calls (appends, rolls, flushes) and retries their faults. */
  #lake<T>(sink: string, fn: () => Promise<T>): Promise<T> {
    const next = this.#lakeChain.then(() => retrying(sink, this.#hooks, fn));
    this.#lakeChain = next.catch(() => {});
    return next;
  }

  // ---- compaction, completeness and idleness ---------------------------------

  /** Compacts hours whose end the watermark passed by compaction.afterMs. */
  #scheduleCompaction(): void {
    const c = this.#d.plan.lake.compaction;
    if (!c.enabled || !this.#d.compactHour || this.#stopping) return;
    for (const st of this.#parts.values()) {
      for (const hour of st.takeDueCompactions(c.afterMs)) this.#compact(hour, st.partition);
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
      for (const [p, end] of ends) this.#parts.get(p)?.sawEnd(end, at);
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
      if (!st.closeIfIdle(now, d.plan.speed.idleTimeoutMs)) continue;
      closed = true;
      d.log.debug("idle partition: open windows closed", { partition: st.partition });
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
    for (const t of this.#timers) clearInterval(t);
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
    d.log.info("speed layer stopped", { counters: this.status().counters });
    this.#resolveDone();
  }

  status(): SpeedStatus {
    const t = this.#d.telemetry;
    return {
      running: this.#running && !this.#stopping,
      sinksDown: [...this.#down],
      partitions: [...this.#parts.values()]
        .sort((a, b) => a.partition - b.partition)
        .map((st) => st.status()),
      counters: {
        consumed: t.consumed.get(),
        valid: t.valid.get(),
        deadLetters: t.deadLetters.total(),
        lateUpdated: t.lateUpdated.get(),
        lateDropped: t.lateDropped.get(),
        windowsWritten: t.windowsWritten.get(),
        flushes: t.flushes.get(),
      },
    };
  }
}
