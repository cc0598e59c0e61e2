/**
 * Query and body parameters, parsed strictly: a bad value is a `UserError`
 * (400) whose message names the parameter and quotes what was sent, so a
 * client never gets a 500 (or a PostgreSQL error) for its own mistake.
 */
import { HOUR_MS } from "../core/window.ts";
import { UserError } from "../errors.ts";

export const DAY_MS = 24 * HOUR_MS;

// Date-only, the batch layer's hour label (2026-11-28T10), or a full time with
// optional seconds, fraction and zone. No zone means UTC: every table is UTC.
const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(\.\d{1,9})?)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i;

/**
 * Parses an ISO-8601 time into epoch ms.
 *
 * @example parseTime("from", "2026-11-28T10") // Date.UTC(2026, 10, 28, 10)
 */
export function parseTime(name: string, text: string): number {
  const m = ISO_RE.exec(text.trim());
  if (m) {
    const [, y, mo, d, h = "00", mi = "00", s = "00", frac = "", zone = "Z"] = m;
    const utc = zone.toUpperCase() === "Z";
    const z = utc ? "Z" : `${zone.slice(0, 3)}:${zone.slice(-2)}`;
    const iso = `${y}-${mo}-${d}T${h}:${mi}:${s}${frac.slice(0, 4)}${z}`;
    const ms = Date.parse(iso);
    // Date.parse rolls 2026-02-31 over to March: compare the date back.
    const utcDay = utc && !Number.isNaN(ms)
      ? new Date(ms).toISOString().slice(0, 10) === `${y}-${mo}-${d}`
      : true;
    if (!Number.isNaN(ms) && utcDay) return ms;
  }
  throw new UserError(`${name}: expected an ISO-8601 time, got ${JSON.stringify(text)}`);
}

export interface TimeRange {
  readonly from: number;
  readonly to: number;
}

export interface RangeOptions {
  /** Length of the range when `from` is missing. */
  readonly defaultMs: number;
  /** Longest range accepted. */
  readonly maxMs: number;
  /** Now, epoch ms: the default `to`. */
  readonly now: number;
}

/** `from`/`to` query parameters: defaults, order and length checked. */
export function parseRange(
  query: (name: string) => string | undefined,
  o: RangeOptions,
): TimeRange {
  const toText = query("to");
  const fromText = query("from");
  const to = toText === undefined ? o.now : parseTime("to", toText);
  const from = fromText === undefined ? to - o.defaultMs : parseTime("from", fromText);
  if (to <= from) {
    throw new UserError(
      `to: must be after from (from=${iso(from)}, to=${iso(to)})`,
    );
  }
  if (to - from > o.maxMs) {
    throw new UserError(
      `to: the range from ${iso(from)} to ${iso(to)} is longer than the maximum of ${
        describeMs(o.maxMs)
      } for this request`,
    );
  }
  return { from, to };
}

/** A positive integer parameter, with a default and a maximum. */
export function parseLimit(
  name: string,
  text: string | undefined,
  def: number,
  max: number,
): number {
  if (text === undefined) return def;
  if (!/^\d{1,9}$/.test(text.trim()) || Number(text) < 1 || Number(text) > max) {
    throw new UserError(
      `${name}: expected an integer from 1 to ${max}, got ${JSON.stringify(text)}`,
    );
  }
  return Number(text);
}

/** One of a fixed set of words. */
export function parseChoice<T extends string>(
  name: string,
  text: string | undefined,
  choices: readonly T[],
  def: T,
): T {
  if (text === undefined) return def;
  if (!(choices as readonly string[]).includes(text)) {
    throw new UserError(
      `${name}: expected one of ${choices.join(", ")}, got ${JSON.stringify(text)}`,
    );
  }
  return text as T;
}

/** A free text filter (an id, an email): bounded so it cannot bloat a query. */
export function parseText(name: string, text: string | undefined, max = 512): string | undefined {
  if (text === undefined) return undefined;
  if (text.length === 0 || text.length > max) {
    throw new UserError(`${name}: expected 1 to ${max} characters, got ${text.length}`);
  }
  return text;
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function describeMs(ms: number): string {
  if (ms % DAY_MS === 0) return `${ms / DAY_MS} days`;
  if (ms % HOUR_MS === 0) return `${ms / HOUR_MS} hours`;
  return `${ms} ms`;
}
