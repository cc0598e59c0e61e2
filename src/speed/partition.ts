/**
 * One Kafka partition as the speed layer owns it: its state and every
 * decision over it, as plain functions of that state, free of I/O — what a
 * batch of messages does to it (`ingest`), what a flush takes and writes
 * (`take`, `written`), what may be committed (`commitOffset`), when it must
 * wait (`mustWait`), which hours are due for compaction and when it is idle.
 * The layer (layer.ts) only awaits the sinks and timers around these.
 *
 * Offsets and replays: messages below `next` were seen in this session and
 * are skipped; messages below `skipBelow` (the offset PostgreSQL held when
 * the partition was taken) were applied before, so they go to the lake only,
 * never to the windows, the dead letters or the participants again.
 */
import { partitionCompleteMs } from "../core/completeness.ts";
import type { SourcedEvent } from "../core/event.ts";
import type { CompiledMetric } from "../core/metric.ts";
import { PartitionWindows, type WindowOptions } from "../core/partition_windows.ts";
import { validateMessage } from "../core/validate.ts";
import { HOUR_MS, hourStart, windowStart } from "../core/window.ts";
import type { SchemaPlan } from "../config/plan.ts";
import type { DeadLetter, SourceMessage } from "./source.ts";
import { LakeTrail } from "./lake_trail.ts";
import type { FlushParticipant } from "./participant.ts";
import type { PartitionFlush, Progress } from "./sink.ts";
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

/** What one batch did: the lake's events and the counts telemetry adds up. */
export interface Ingested {
  /** Valid events, in offset order, for the lake (replays included: the lake skips what it has). */
  readonly events: SourcedEvent[];
  /** Messages new to this session. */
  readonly consumed: number;
  readonly valid: number;
  readonly lateUpdated: number;
  readonly lateDropped: number;
  /** Reasons of the new dead letters, one per letter. */
  readonly rejected: readonly string[];
}

/** What a batch needs besides its messages. */
export interface IngestContext {
  readonly schema: SchemaPlan;
  /** Wall clock, epoch ms: the validation's future bound. */
  readonly nowMs: number;
  readonly participants: readonly FlushParticipant[];
}

export class SpeedPartition {
  /** Next offset to process (messages below were seen in this session). */
  next: number;
  /** Next offset applied in PostgreSQL (everything below is counted). */
  stored: number;
  /** Next offset committed to Kafka (-1 before the first commit). */
  committed = -1;
  /** Offsets below were applied before this session: lake only. */
  readonly skipBelow: number;
  /** Where reading starts: both PostgreSQL and the lake are durable below it. */
  readonly resumeOffset: number;
  /** The windows of the metrics the partition runs now (replaced at a plan switch). */
  windows: PartitionWindows;
  #storedClock: number;
  #highWatermark = -1;
  #lastEventWall: number;
  #letters: DeadLetter[] = [];
  /** Starts of windows holding data that the watermark has not passed yet. */
  readonly #open = new Set<number>();
  /** Hours (epoch ms) with events appended to the lake and not compacted yet. */
  readonly #hours = new Set<number>();
  #lastHour = NaN;
  /** Partial rows PostgreSQL may hold, so new ones are inserted rather than upserted. */
  #written: WrittenRows;
  /** The lake's completeness and changed hours, as the next flush records them. */
  readonly #trail: LakeTrail;
  /** What PostgreSQL holds of the lake's progress (a flush with no change skips it). */
  #storedLake: number;
  #storedLakeClock: number;
  #storedCaughtUp: number;

  /**
   * @param progress what PostgreSQL recorded for the partition (undefined:
   *   nothing applied yet, everything is read from the start)
   */
  constructor(
    readonly partition: number,
    metrics: readonly CompiledMetric[],
    readonly options: WindowOptions,
    progress: Progress | undefined,
    nowMs: number,
  ) {
    this.windows = new PartitionWindows(metrics, options, progress?.clockMs ?? -Infinity);
    this.skipBelow = progress?.nextOffset ?? 0;
    // Resume where both sinks are durable: PostgreSQL replays are skipped, the
    // lake rewrites what a crash left unfinished.
    this.resumeOffset = progress ? Math.min(progress.nextOffset, progress.lakeOffset) : 0;
    this.next = this.resumeOffset;
    this.stored = this.skipBelow;
    this.#storedClock = this.windows.clockMs;
    this.#lastEventWall = nowMs;
    this.#written = new WrittenRows(this.windows.clockMs, options.windowMs);
    this.#storedLake = progress?.lakeOffset ?? -1;
    this.#storedLakeClock = progress?.lakeClockMs ?? -Infinity;
    this.#storedCaughtUp = progress?.caughtUpMs ?? -Infinity;
    this.#trail = new LakeTrail(this.#storedLakeClock, this.#storedCaughtUp);
  }

  /**
   * What a batch of messages (offset order) does to the partition: each new
   * message is validated; a valid one goes to the lake, and, unless applied
   * before this session, to the participants and the windows; a bad one
   * becomes a dead letter.
   */
  ingest(messages: readonly SourceMessage[], highWatermark: number, ctx: IngestContext): Ingested {
    const { windowMs } = this.options;
    const events: SourcedEvent[] = [];
    const rejected: string[] = [];
    let consumed = 0, valid = 0, lateUpdated = 0, lateDropped = 0;
    for (const msg of messages) {
      if (msg.offset < this.next) continue; // delivered again in this session
      consumed++;
      const v = validateMessage(msg.value, ctx.schema, ctx.nowMs);
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
        const tMs = e.timestamp * 1000;
        this.#trail.event(msg.offset, tMs);
        const hour = hourStart(tMs);
        if (hour !== this.#lastHour) {
          this.#hours.add(hour);
          this.#lastHour = hour;
        }
        if (msg.offset >= this.skipBelow) {
          for (const p of ctx.participants) p.event(ev);
          const lateness = this.windows.add(ev);
          if (lateness === "on_time") this.#open.add(windowStart(tMs, windowMs));
          else if (lateness === "late_updated") lateUpdated++;
          else lateDropped++;
        }
      } else if (msg.offset >= this.skipBelow) {
        // Copies: the source's bytes are views of a whole fetch response (MiBs),
        // which a held view would keep alive until the next flush.
        this.#letters.push({
          partition: msg.partition,
          offset: msg.offset,
          key: msg.key && new Uint8Array(msg.key),
          value: msg.value && new Uint8Array(msg.value),
          reason: v.reason,
          detail: v.detail,
        });
        rejected.push(v.reason);
      }
      this.next = msg.offset + 1;
    }
    this.#trail.mark(this.next);
    if (consumed) this.#lastEventWall = ctx.nowMs;
    this.#highWatermark = highWatermark;
    return { events, consumed, valid, lateUpdated, lateDropped, rejected };
  }

  /** Messages behind the partition's end, as of the last batch. */
  get lag(): number {
    return this.#highWatermark < 0 ? 0 : Math.max(0, this.#highWatermark - this.next);
  }

  /** The watermark passed an open window: it should be written soon. */
  hasClosedWindow(): boolean {
    const wm = this.windows.watermarkMs;
    for (const s of this.#open) if (s + this.options.windowMs <= wm) return true;
    return false;
  }

  /** More rows changed than a flush in flight may leave behind: consumption waits for the next take. */
  mustWait(maxDirtyRows: number): boolean {
    return this.windows.dirtyRows > maxDirtyRows;
  }

  /** The end of the partition's log was `endOffset` when read at wall time `atMs`. */
  sawEnd(endOffset: number, atMs: number): void {
    this.#trail.sawEnd(endOffset, atMs);
  }

  /**
   * Runs other metrics from the next message on (a live plan switch): the
   * windows start over with them, keeping the partition's event-time clock,
   * so the lateness of every later event is what it would have been (and
   * what a replay of the lake finds). Take the old metrics' deltas first.
   * Rows of windows up to the clock may exist already (the backfill of a new
   * metric writes them): from now on they are upserted, not inserted.
   */
  switchTo(metrics: readonly CompiledMetric[]): void {
    const clockMs = this.windows.clockMs;
    this.windows = new PartitionWindows(metrics, this.options, clockMs);
    this.#written = new WrittenRows(clockMs, this.options.windowMs);
  }

  /**
   * What a flush writes for the partition (undefined: nothing changed): the
   * window deltas, split into rows known to be new (inserted) and the others
   * (upserted, or all of them once `upsertOnly`), the dead letters, the
   * offsets, the clocks and what the lake and the participants add.
   *
   * @param lakeDurable every valid event below it is durable in the lake (undefined: unknown)
   */
  take(
    lakeDurable: number | undefined,
    o: {
      readonly upsertOnly: boolean;
      readonly participants: readonly FlushParticipant[];
      /** Take even when nothing changed (a plan switch records its offset). */
      readonly force?: boolean;
    },
  ): PartitionFlush | undefined {
    const taken = this.windows.takeDeltas();
    const { upserts: deltas, inserts } = o.upsertOnly
      ? { upserts: taken, inserts: [] }
      : this.#written.split(taken);
    // The watermark of the take: windows it passed by the lateness get no more deltas.
    this.#written.prune(this.windows.watermarkMs, this.options.allowedLatenessMs);
    const letters = this.#letters;
    this.#letters = [];
    const nextOffset = Math.max(this.next, this.stored);
    const clockMs = this.windows.clockMs;
    const lakeOffset = Math.min(nextOffset, lakeDurable ?? this.stored);
    const lake = this.#trail.take(lakeOffset);
    const dropped = this.windows.takeDropped();
    const writes = o.participants.flatMap((p) => p.take(this.partition, { lag: this.lag }) ?? []);
    if (
      !o.force && deltas.length === 0 && inserts.length === 0 && letters.length === 0 &&
      nextOffset === this.stored && clockMs === this.#storedClock &&
      lakeOffset === this.#storedLake && lake.clockMs === this.#storedLakeClock &&
      lake.caughtUpMs === this.#storedCaughtUp && lake.hours.length === 0 &&
      dropped.length === 0 && writes.length === 0
    ) return undefined;
    return {
      partition: this.partition,
      deltas,
      inserts,
      letters,
      nextOffset,
      lakeOffset,
      clockMs,
      watermarkMs: this.windows.watermarkMs,
      lakeClockMs: lake.clockMs,
      caughtUpMs: lake.caughtUpMs,
      lakeHours: lake.hours,
      dropped,
      writes,
    };
  }

  /**
   * PostgreSQL holds `part` (this partition's last take): returns how many
   * open windows it wrote for good and whether the partition's lake became
   * complete past another hour's end.
   */
  written(part: PartitionFlush): { windowsWritten: number; lakeHour: boolean } {
    const lakeHour = this.#lakeHour(this.#storedLakeClock, this.#storedCaughtUp) <
      this.#lakeHour(part.lakeClockMs!, part.caughtUpMs!);
    this.stored = part.nextOffset;
    this.#storedClock = part.clockMs;
    this.#storedLake = part.lakeOffset;
    this.#storedLakeClock = part.lakeClockMs!;
    this.#storedCaughtUp = part.caughtUpMs!;
    let windowsWritten = 0;
    for (const s of this.#open) {
      if (s + this.options.windowMs <= part.watermarkMs) {
        this.#open.delete(s);
        windowsWritten++;
      }
    }
    return { windowsWritten, lakeHour };
  }

  /** The hour a partition's lake is complete into (src/core/completeness.ts). */
  #lakeHour(lakeClockMs: number, caughtUpMs: number): number {
    const lateness = this.options.allowedLatenessMs;
    const complete = partitionCompleteMs({ partition: 0, lakeClockMs, caughtUpMs }, lateness);
    return Number.isFinite(complete) ? hourStart(complete - lateness) : -Infinity;
  }

  /**
   * The next offset to commit to Kafka: the lower of what PostgreSQL and the
   * lake hold durably, when it moved past the last commit.
   */
  commitOffset(lakeDurable: number | undefined): number | undefined {
    const off = Math.min(this.stored, lakeDurable ?? this.stored);
    return off > this.committed ? off : undefined;
  }

  /** Hours with lake files whose end the watermark passed by `afterMs`: compact them (once). */
  takeDueCompactions(afterMs: number): number[] {
    const wm = this.windows.watermarkMs;
    const due: number[] = [];
    for (const hour of this.#hours) {
      if (hour + HOUR_MS + afterMs > wm) continue;
      this.#hours.delete(hour);
      if (this.#lastHour === hour) this.#lastHour = NaN;
      due.push(hour);
    }
    return due;
  }

  /**
   * No message for `idleTimeoutMs` of wall time: closes the open windows (the
   * stream went quiet). True when it closed some.
   */
  closeIfIdle(nowMs: number, idleTimeoutMs: number): boolean {
    if (nowMs - this.#lastEventWall < idleTimeoutMs) return false;
    return this.windows.closeIdle();
  }

  status(): PartitionStatus {
    const clock = this.windows.clockMs;
    return {
      partition: this.partition,
      clockMs: Number.isFinite(clock) ? clock : null,
      watermarkMs: Number.isFinite(clock) ? this.windows.watermarkMs : null,
      nextOffset: this.next,
      storedOffset: this.stored,
      committedOffset: this.committed,
      lag: this.lag,
    };
  }
}
