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
import { Serial } from "../async/serial.ts";
import type { Plan } from "../config/plan.ts";
import { type CompiledMetric, compileMetric } from "../core/metric.ts";
import type { SourceBatch } from "./source.ts";
import type { FlushParticipant } from "./participant.ts";
import { LakeGate } from "./lake_gate.ts";
import { SpeedPartition } from "./partition.ts";
import { type RetryHooks, retrying } from "./retry.ts";
import { FlushTimer } from "./flush_timer.ts";
import type { PartitionSwitch, SpeedPlanSwitch, SpeedSwitchResult } from "./plan_switch.ts";
import { Flusher, type Taken } from "./flusher.ts";
import { readProgress, recordTopic, upsertMetrics } from "./sink.ts";
import type { LayerDeps, SpeedStatus } from "./types.ts";

export type { LayerDeps, PartitionStatus, SpeedStatus } from "./types.ts";

/**
 * How often the end of every partition's log is read, so a quiet, fully
 * consumed partition keeps counting as complete (src/core/completeness.ts):
 * the idle timeout, at most 5 s.
 */
const END_POLL_MAX_MS = 5_000;

export class Layer {
  readonly #d: LayerDeps;
  /** The plan running now: the deps' at start, a reload's after a switch (applyPlan). */
  #plan: Plan;
  #metrics: CompiledMetric[];
  /** The last switch, recorded too by the first flush of a partition assigned after it. */
  #switched: SpeedPlanSwitch | undefined;
  readonly #participants: readonly FlushParticipant[];
  readonly #parts = new Map<number, SpeedPartition>();
  readonly #down = new Set<string>();
  readonly #hooks: RetryHooks;
  #running = false;
  #stopping = false;
  /** Aborted past the stop deadline: retries give up. */
  readonly #abort = new AbortController();
  readonly #flushes = new Serial();
  readonly #lake: LakeGate;
  readonly #timer: FlushTimer;
  readonly #flusher: Flusher;
  /** Batches waiting for the next flush to take their partition's dirty rows. */
  #takeWaiters: (() => void)[] = [];
  #loop: Promise<void> | undefined;
  #timers: ReturnType<typeof setInterval>[] = [];
  /** Partitions assigned after the last switch whose first flush records it. */
  readonly #unrecorded = new Map<number, PartitionSwitch>();
  #polling = false;
  /** Partitions of the topic as last recorded in speed_topics. */
  #topicPartitions = 0;
  #resolveDone!: () => void;
  readonly done: Promise<void>;

  constructor(deps: LayerDeps) {
    this.#d = deps;
    this.#plan = deps.plan;
    this.#metrics = deps.plan.speed.metrics.map(compileMetric);
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
      signal: this.#abort.signal,
    };
    this.#timer = new FlushTimer(deps.plan.speed.flushIntervalMs);
    this.#flusher = new Flusher({
      ...deps,
      windowMs: deps.plan.speed.windowMs,
      aggregations: new Map(deps.plan.speed.metrics.map((m) => [m.name, m.aggregation])),
      hooks: this.#hooks,
    });
    this.#lake = new LakeGate({
      ...deps,
      plan: deps.plan.lake,
      hooks: this.#hooks,
      flushNow: () => this.flushNow(),
      stopping: () => this.#stopping,
    });
  }

  async start(): Promise<void> {
    const d = this.#d;
    const speed = this.#plan.speed;
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
      windowMs: this.#plan.speed.windowMs,
      allowedLatenessMs: this.#plan.speed.allowedLatenessMs,
    };
    for (const p of partitions) {
      const pr = progress.get(p);
      const st = new SpeedPartition(p, this.#metrics, opts, pr, d.clock());
      if (this.#switched) {
        // Everything it applies is under the switched plan: record that, at
        // its stored offset, with its first flush.
        this.#unrecorded.set(p, {
          partition: p,
          offset: st.skipBelow,
          clockMs: st.windows.clockMs,
        });
      }
      // Without progress nothing of this partition was applied yet: whatever
      // the lake holds beyond the last commit is an orphan, replayed anyway.
      if (pr) starts.set(p, st.resumeOffset);
      await this.#lake.run("lake", () => d.lake.recover(p, st.resumeOffset));
      this.#parts.set(p, st);
      const unfinished = d.unfinishedCompactions;
      if (unfinished && this.#lake.compacting) {
        for (const hour of await retrying("lake", this.#hooks, () => unfinished(p))) {
          d.log.info("lake compaction cut short by a crash: compacting again", {
            hour: new Date(hour).toISOString(),
            partition: p,
          });
          this.#lake.compact(hour, p);
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
    for (const p of mine) await this.#lake.run("lake", () => d.lake.flush(p));
    await this.flushNow();
    for (const p of mine) {
      this.#parts.delete(p);
      for (const x of this.#participants) x.release?.(p);
      await this.#lake.run("lake", () => d.lake.release(p));
    }
    d.log.info("speed partitions revoked", { partitions: mine });
  }

  async #onBatch(batch: SourceBatch): Promise<void> {
    const st = this.#parts.get(batch.partition);
    if (!st) return;
    const d = this.#d;
    const t = d.telemetry;
    const r = st.ingest(batch.messages, batch.highWatermark, {
      schema: this.#plan.schema,
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
    if (st.hasClosedWindow()) this.#timer.request();
    // A held batch keeps its partitions: kafkajs heartbeats from its fetch loop
    // meanwhile (tests/speed/heartbeat_test.ts holds one past the session timeout).
    await this.#dirtyBackpressure(st);
    await this.#lake.backpressure(st.partition);
  }

  // ---- backpressure ----------------------------------------------------------

  /**
   * Bounds memory when PostgreSQL is slower than Kafka (catching up): past
   * maxDirtyRows, this partition's fetches wait until the next flush takes its
   * rows, not until it is written, so consuming and writing overlap. Changes
   * to a row merge in memory meanwhile, so bigger flushes write fewer rows.
   */
  async #dirtyBackpressure(st: SpeedPartition): Promise<void> {
    const max = this.#plan.speed.maxDirtyRows;
    while (st.mustWait(max) && !this.#stopping && this.#parts.get(st.partition) === st) {
      this.#timer.request();
      await new Promise<void>((resolve) => this.#takeWaiters.push(resolve));
    }
  }

  #releaseTakeWaiters(): void {
    const waiters = this.#takeWaiters;
    this.#takeWaiters = [];
    for (const resolve of waiters) resolve();
  }

  // ---- flushing --------------------------------------------------------------

  async #flushLoop(): Promise<void> {
    while (this.#running) {
      await this.#timer.wait();
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
    return this.#flushes.run(async () => void await this.#flushOnce());
  }

  /**
   * Switches to `s.next` at a recorded offset of each owned partition (the
   * contract is in plan_switch.ts): one flush takes every partition under the
   * old plan, records its switch in the same transaction, and every later
   * message runs under the new plan.
   */
  applyPlan(s: SpeedPlanSwitch): Promise<SpeedSwitchResult> {
    if (this.#stopping) return Promise.reject(new Error("the speed layer is stopping"));
    return this.#flushes.run(async () => ({ switchOffsets: await this.#flushOnce(s) }));
  }

  async #flushOnce(sw?: SpeedPlanSwitch): Promise<Map<number, number>> {
    const d = this.#d;
    this.#timer.started();
    // Age-based rolls first, so the lake offsets recorded below are fresh.
    d.lake.tick();
    const taken: Taken[] = [];
    const switched = new Map<number, number>();
    const take = { upsertOnly: this.#flusher.upsertOnly, participants: this.#participants };
    for (const st of this.#parts.values()) {
      const at = this.#unrecorded.get(st.partition);
      const force = sw !== undefined || at !== undefined;
      let part = st.take(d.lake.durableOffset(st.partition), { ...take, force });
      if (!part) continue;
      if (sw) {
        // Every message below the next to apply ran under the old plan.
        const here = { partition: st.partition, offset: part.nextOffset, clockMs: part.clockMs };
        part = { ...part, writes: [...part.writes ?? [], sw.switchWrite(here)] };
        switched.set(st.partition, here.offset);
      } else if (at) {
        part = { ...part, writes: [...part.writes ?? [], this.#switched!.switchWrite(at)] };
      }
      taken.push({ st, part });
    }
    if (sw) this.#adopt(sw);
    this.#releaseTakeWaiters();
    if (taken.length > 0) await this.#flusher.write(taken);
    for (const { st } of taken) this.#unrecorded.delete(st.partition);
    await this.#flusher.commit(this.#parts.values());
    this.#scheduleCompaction();
    return switched;
  }

  /** Runs `s.next` from now on: its metrics in every partition, its live settings everywhere. */
  #adopt(s: SpeedPlanSwitch): void {
    const next = s.next;
    this.#plan = next;
    this.#switched = s;
    this.#unrecorded.clear();
    this.#metrics = next.speed.metrics.map(compileMetric);
    for (const st of this.#parts.values()) st.switchTo(this.#metrics);
    // The switch flush still writes the old metrics' deltas (removed ones included).
    this.#flusher.aggregations = new Map([
      ...this.#flusher.aggregations,
      ...next.speed.metrics.map((m) => [m.name, m.aggregation] as const),
    ]);
    // A backfill may write rows of the new metrics in the live windows meanwhile.
    this.#flusher.upsertOnly = true;
    this.#timer.everyMs = next.speed.flushIntervalMs;
    this.#lake.plan = next.lake;
    this.#d.lake.reconfigure?.(next.lake.roll);
    for (const p of this.#participants) p.applyPlan?.(next);
    this.#d.log.info("speed layer switched to the new plan", {
      added: s.added,
      changed: s.changed,
      removed: s.removed,
      settings: s.settings,
    });
  }

  // ---- compaction, completeness and idleness ---------------------------------

  /** Compacts hours whose end the watermark passed by compaction.afterMs. */
  #scheduleCompaction(): void {
    if (!this.#lake.compacting || this.#stopping) return;
    const after = this.#plan.lake.compaction.afterMs;
    for (const st of this.#parts.values()) {
      for (const hour of st.takeDueCompactions(after)) this.#lake.compact(hour, st.partition);
    }
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
      if (!st.closeIfIdle(now, this.#plan.speed.idleTimeoutMs)) continue;
      closed = true;
      d.log.debug("idle partition: open windows closed", { partition: st.partition });
    }
    if (closed) this.#timer.request();
  }

  // ---- lifecycle -------------------------------------------------------------

  /** Flushes the lake and PostgreSQL, commits, stops the source. Bounded by `deadlineMs`. */
  async stop(deadlineMs = 9_000): Promise<void> {
    if (this.#stopping) return await this.done;
    this.#stopping = true;
    this.#releaseTakeWaiters();
    const deadline = setTimeout(() => this.#abort.abort(), deadlineMs);
    const d = this.#d;
    for (const t of this.#timers) clearInterval(t);
    try {
      d.source.pause();
      await this.#lake.run("lake", () => d.lake.flush());
      await this.flushNow();
      await this.#lake.compacted();
    } catch (error) {
      d.log.error("speed layer stopped without a final flush", { error });
    }
    this.#running = false;
    this.#timer.interrupt();
    await this.#loop;
    try {
      await d.source.stop();
    } catch (error) {
      d.log.error("source stop failed", { error });
    }
    clearTimeout(deadline);
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
