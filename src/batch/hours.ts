/**
 * Hours as the batch layer names them: epoch ms of the UTC hour start inside,
 * `2026-11-28T10` on the command line and in messages.
 */
import { HOUR_MS } from "../core/window.ts";
import { UserError } from "../errors.ts";

/** `2026-11-28T10` for the hour starting at `hourMs`. */
export function hourLabel(hourMs: number): string {
  return new Date(hourMs).toISOString().slice(0, 13);
}

const HOUR_RE = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2})(?::00(?::00(?:\.0+)?)?)?Z?$/;

/**
 * Parses `2026-11-28T10` (also `…T10:00`, `…T10:00:00Z`) as a UTC hour start.
 * A time that is not a whole hour is refused rather than rounded.
 *
 * @example parseHour("2026-11-28T10") // Date.UTC(2026, 10, 28, 10)
 */
export function parseHour(text: string, what = "hour"): number {
  const m = HOUR_RE.exec(text.trim());
  const ms = m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4]) : NaN;
  if (!m || Number.isNaN(ms) || hourLabel(ms) !== `${m[1]}-${m[2]}-${m[3]}T${m[4]}`) {
    throw new UserError(
      `${what} "${text}" is not a UTC hour: expected YYYY-MM-DDTHH, e.g. 2026-11-28T10`,
    );
  }
  return ms;
}

/** The hours from `from` to `to`, both included. */
export function hourRange(from: number, to: number): number[] {
  const out: number[] = [];
  for (let h = from; h <= to; h += HOUR_MS) out.push(h);
  return out;
}

/**
 * An hour start as bound to `$n::timestamp`: a `Date`, which both database
 * backends write as its UTC wall clock (sessions run in UTC).
 */
export function sqlHour(hourMs: number): Date {
  return new Date(hourMs);
}

/** Throws a `UserError` unless `hour` is the start of a UTC hour in epoch ms. */
export function checkHour(hour: number): void {
  if (!Number.isSafeInteger(hour) || hour % HOUR_MS !== 0) {
    throw new UserError(`hour ${hour} is not the start of a UTC hour in epoch ms`);
  }
}
