/**
 * Event-time tumbling windows. Pure arithmetic on epoch milliseconds, used by
 * the speed layer's windows and by the batch layer's hours.
 */

export const HOUR_MS = 3_600_000;

/** Start of the window of length `sizeMs` holding `tMs` (windows align to the epoch). */
export function windowStart(tMs: number, sizeMs: number): number {
  return Math.floor(tMs / sizeMs) * sizeMs;
}

/** Start of the UTC hour holding `tMs`. */
export function hourStart(tMs: number): number {
  return windowStart(tMs, HOUR_MS);
}

/** How an event relates to the watermark when it arrives. */
export type Lateness = "on_time" | "late_updated" | "late_dropped";

/**
 * Classifies an event of window `[start, start + sizeMs)` against watermark `wm`:
 * - on_time: its window has not closed (wm < end);
 * - late_updated: the window was written (wm >= end) but is still within the
 *   allowed lateness (wm < end + lateness): the written row is updated;
 * - late_dropped: later than that; the speed layer skips it (the lake keeps it).
 */
export function classify(start: number, sizeMs: number, latenessMs: number, wm: number): Lateness {
  const end = start + sizeMs;
  if (wm < end) return "on_time";
  if (wm < end + latenessMs) return "late_updated";
  return "late_dropped";
}
