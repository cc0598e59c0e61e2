/**
 * What one partition's flush says about the lake, worked out from plain
 * state and free of I/O: the event-time clock at the lake-durable offset, the
 * wall time the partition was last seen fully in the lake, and the hours that
 * got lake rows since the previous flush (which the sink stamps as changed,
 * so a batched hour that gets late rows turns stale). See
 * src/core/completeness.ts for what the batch layer makes of them.
 *
 * The layer feeds it every valid event it consumes, in offset order
 * (`event`), marks the end of each batch (`mark`), reports the end of the log
 * when it reads it (`sawEnd`), and `take`s at each flush what became durable
 * below the lake offset it records.
 */
import { hourStart } from "../core/window.ts";

/** What `take` hands to a flush. */
export interface LakeTake {
  /** Event-time clock over the events below the lake offset, epoch ms (-Infinity: none). */
  readonly clockMs: number;
  /** Wall time the whole log was found durable, epoch ms (-Infinity: never). */
  readonly caughtUpMs: number;
  /** Starts of the hours with events that became durable since the last take, ascending. */
  readonly hours: readonly number[];
}

interface HourSpan {
  /** Lowest and highest offset of the hour's events not yet taken. */
  min: number;
  max: number;
}

export class LakeTrail {
  /** Highest event time consumed in this session (from the restored lake clock). */
  #clockMs: number;
  /** (offset, clock) after each batch: the clock over every event below `offset`. */
  #marks: { offset: number; clockMs: number }[] = [];
  #takenClockMs: number;
  #caughtUpMs: number;
  #end: { offset: number; atMs: number } | undefined;
  readonly #hours = new Map<number, HourSpan>();
  #lastHour = NaN;
  #lastSpan: HourSpan | undefined;

  /**
   * @param restoredClockMs the clock at the recorded lake offset (-Infinity when new)
   * @param restoredCaughtUpMs the recorded caught-up time (-Infinity when never)
   */
  constructor(restoredClockMs = -Infinity, restoredCaughtUpMs = -Infinity) {
    this.#clockMs = restoredClockMs;
    this.#takenClockMs = restoredClockMs;
    this.#caughtUpMs = restoredCaughtUpMs;
  }

  /** A valid event at `offset` with event time `tMs` (offset order). */
  event(offset: number, tMs: number): void {
    if (tMs > this.#clockMs) this.#clockMs = tMs;
    const hour = hourStart(tMs);
    if (hour === this.#lastHour) {
      this.#lastSpan!.max = offset;
      return;
    }
    let span = this.#hours.get(hour);
    if (span) span.max = offset;
    else this.#hours.set(hour, span = { min: offset, max: offset });
    this.#lastHour = hour;
    this.#lastSpan = span;
  }

  /** Every message below `nextOffset` has been fed. */
  mark(nextOffset: number): void {
    const last = this.#marks[this.#marks.length - 1];
    if (last && last.clockMs === this.#clockMs) {
      last.offset = Math.max(last.offset, nextOffset);
    } else this.#marks.push({ offset: nextOffset, clockMs: this.#clockMs });
  }

  /** The end of the log was `endOffset` when read at wall time `atMs`. */
  sawEnd(endOffset: number, atMs: number): void {
    if (!this.#end || atMs >= this.#end.atMs) this.#end = { offset: endOffset, atMs };
  }

  /**
   * What a flush recording `lakeOffset` (every event below it is durable in
   * the lake) writes. The clock is that of the last batch end at or below
   * the offset: a lower bound when a segment was cut inside a batch, exact
   * once the lake catches up.
   */
  take(lakeOffset: number): LakeTake {
    let i = 0;
    while (i < this.#marks.length && this.#marks[i].offset <= lakeOffset) i++;
    if (i > 0) {
      this.#takenClockMs = Math.max(this.#takenClockMs, this.#marks[i - 1].clockMs);
      this.#marks.splice(0, i);
    }
    if (this.#end && lakeOffset >= this.#end.offset) {
      this.#caughtUpMs = Math.max(this.#caughtUpMs, this.#end.atMs);
    }
    const hours: number[] = [];
    for (const [hour, span] of this.#hours) {
      if (span.min >= lakeOffset) continue;
      hours.push(hour);
      // What is left of the hour is at or above the offset, if anything: a
      // later take reports it again once durable.
      if (span.max >= lakeOffset) span.min = lakeOffset;
      else {
        this.#hours.delete(hour);
        if (hour === this.#lastHour) {
          this.#lastHour = NaN;
          this.#lastSpan = undefined;
        }
      }
    }
    hours.sort((a, b) => a - b);
    return { clockMs: this.#takenClockMs, caughtUpMs: this.#caughtUpMs, hours };
  }

  /** Hours with events not yet taken (for tests and memory checks). */
  get pendingHours(): number {
    return this.#hours.size;
  }
}
