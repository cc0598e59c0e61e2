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
import { pausingHooks, type RetryHooks, retrying } from "./retry.ts";
import { FlushTimer } from "./flush_timer.ts";
import type { SpeedPlanSwitch, SpeedSwitchResult } from "./plan_switch.ts";
import { Flusher, type Taken } from "./flusher.ts";
import { EndPoller } from "./end_poller.ts";
import { upsertMetrics } from "./sink.ts";
import { type Assignment, assignPartitions, revokePartitions } from "./assignment.ts";
import { SwitchRecords } from "./switch_records.ts";
import { countersOf, countIngest } from "./telemetry.ts";
import type { LayerDeps, SpeedStatus } from "./types.ts";

export type { LayerDeps, PartitionStatus, SpeedStatus } from "./types.ts";

export class Layer {
  readonly #d: LayerDeps;
  /** The plan running now: the deps' at start, a reload's after a switch (applyPlan). */
  #plan: Plan;
  #metrics: CompiledMetric[];
  readonly #switches = new SwitchRecords();
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
  #idleTimer: ReturnType<typeof setInterval> | undefined;
  readonly #ends: EndPoller;
  #resolveDone!: () => void;
  readonly done: Promise<void>;

  constructor(deps: LayerDeps) {
    this.#d = deps;
    this.#plan = deps.plan;
    this.#metrics = deps.plan.speed.metrics.map(compileMetric);
    this.#participants = deps.participants ?? [];
    this.done = new Promise((r) => this.#resolveDone = r);
    this.#hooks = pausingHooks(deps, this.#down, () => this.#stopping, this.#abort.signal);
    this.#timer = new FlushTimer(deps.plan.speed.flushIntervalMs);
    this.#flusher = new Flusher({
      ...deps,
      windowMs: deps.plan.speed.windowMs,
      aggregations: new Map(deps.plan.speed.metrics.map((m) => [m.name, m.aggregation])),
      hooks: this.#hooks,
    });
    this.#lake = new LakeGate({
      ...deps,
      unfinished: deps.unfinishedCompactions,
      plan: deps.plan.lake,
      hooks: this.#hooks,
      flushNow: () => this.flushNow(),
      stopping: () => this.#stopping,
    });
    this.#ends = new EndPoller(deps, this.#parts, () => this.#stopping);
  }

  async start(): Promise<void> {
    const d = this.#d;
    const speed = this.#plan.speed;
    await retrying("postgres", this.#hooks, () => upsertMetrics(d.db, speed));
    this.#running = true;
    this.#loop = this.#flushLoop();
    const idleEvery = Math.max(50, Math.min(1_000, speed.idleTimeoutMs / 4));
    this.#idleTimer = setInterval(() => this.#checkIdle(), idleEvery);
    await d.source.start({
      onBatch: (b) => this.#onBatch(b),
      onAssign: (p) => assignPartitions(this.#assignment(), p),
      onRevoke: (p) => revokePartitions(this.#assignment(), p),
    });
    await this.#ends.start(speed.idleTimeoutMs);
    d.log.info("speed layer started", {
      topic: d.topic,
      source: d.source.kind,
      metrics: speed.metrics.map((m) => m.name),
      windowMs: speed.windowMs,
    });
  }

  // ---- source handlers -------------------------------------------------------

  #assignment(): Assignment {
    return {
      d: this.#d,
      hooks: this.#hooks,
      lake: this.#lake,
      parts: this.#parts,
      switches: this.#switches,
      participants: this.#participants,
      plan: this.#plan,
      metrics: this.#metrics,
      flushNow: () => this.flushNow(),
    };
  }

  async #onBatch(batch: SourceBatch): Promise<void> {
    const st = this.#parts.get(batch.partition);
    if (!st) return;
    const d = this.#d;
    const r = st.ingest(batch.messages, batch.highWatermark, {
      schema: this.#plan.schema,
      nowMs: d.clock(),
      participants: this.#participants,
    });
    countIngest(d.telemetry, st, r);
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
      const force = this.#switches.due(st.partition, sw);
      const part = st.take(d.lake.durableOffset(st.partition), { ...take, force });
      if (part) taken.push({ st, part: this.#switches.carry(st.partition, part, sw, switched) });
    }
    if (sw) this.#adopt(sw);
    this.#releaseTakeWaiters();
    if (taken.length > 0) await this.#flusher.write(taken);
    for (const { st } of taken) this.#switches.recorded(st.partition);
    await this.#flusher.commit(this.#parts.values());
    this.#scheduleCompaction();
    return switched;
  }

  /** Runs `s.next` from now on: its metrics in every partition, its live settings everywhere. */
  #adopt(s: SpeedPlanSwitch): void {
    const next = s.next;
    this.#plan = next;
    this.#switches.adopt(s);
    this.#metrics = next.speed.metrics.map(compileMetric);
    for (const st of this.#parts.values()) st.switchTo(this.#metrics);
    this.#flusher.adopt(next.speed.metrics);
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
    for (const st of this.#parts.values()) {
      const due = st.takeDueCompactions(this.#plan.lake.compaction.afterMs);
      for (const hour of due) this.#lake.compact(hour, st.partition);
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
    clearInterval(this.#idleTimer);
    this.#ends.stop();
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
    return {
      running: this.#running && !this.#stopping,
      sinksDown: [...this.#down],
      partitions: [...this.#parts.values()]
        .sort((a, b) => a.partition - b.partition)
        .map((st) => st.status()),
      counters: countersOf(this.#d.telemetry),
    };
  }
}
