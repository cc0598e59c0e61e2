/**
 * Query and path parameters, each declared once: the JSON Schema that
 * `/openapi.json` publishes and the check the server runs come from the same
 * definition (the same pattern, bounds and choices), so the document cannot
 * promise more or less than the server keeps. A bad value is a `UserError`
 * (400) whose message names the parameter and quotes what was sent, so a
 * client never gets a 500 (or a PostgreSQL error) for its own mistake.
 *
 * Rules between parameters that JSON Schema cannot state (`to` after `from`,
 * a range's longest length) are not refusals: an empty range is an empty
 * answer, and a range longer than a route's maximum starts later; every
 * answer names the range it covers.
 */
import { HOUR_MS } from "../core/window.ts";
import { UserError } from "../errors.ts";
import type { ParamDoc } from "./route.ts";

export const DAY_MS = 24 * HOUR_MS;

// A calendar date of the years 1000-9999 (what PostgreSQL and ISO-8601 agree
// on without a sign), with the right number of days in every month.
const LEAP_YEAR = "(?:[1-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[13579][26])00)";
const DATE = "(?:[1-9][0-9]{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])" +
  "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))" +
  `|${LEAP_YEAR}-02-29)`;
const HH = "(?:[01][0-9]|2[0-3])";
const MM = "[0-5][0-9]";
const ZONE = `(?:[Zz]|[+-]${HH}:?${MM})`;

/**
 * Date-only, the batch layer's hour label (2026-11-28T10), or a full time with
 * optional seconds, fraction and zone. No zone means UTC: every table is UTC.
 */
export const TIME_PATTERN =
  `^${DATE}(?:[Tt ]${HH}(?::${MM}(?::${MM}(?:\\.[0-9]{1,9})?)?)?${ZONE}?)?$`;
/** A whole UTC hour as the batch layer names it: 2026-11-28T10, …T10:00, …T10:00:00Z. */
export const HOUR_PATTERN = `^${DATE}[T ]${HH}(?::00(?::00(?:\\.0+)?)?)?Z?$`;
/** A free text filter: no NUL (PostgreSQL text cannot hold one, so nothing could match). */
export const TEXT_PATTERN = "^[^\\u0000]+$";

const TIME_RE = new RegExp(TIME_PATTERN);
const HOUR_RE = new RegExp(HOUR_PATTERN);
const TEXT_RE = new RegExp(TEXT_PATTERN, "u");

// The earliest and latest instants a query bound takes: a zone offset may move a
// time just outside the years the pattern allows, which PostgreSQL would refuse.
const MIN_MS = Date.UTC(1000, 0, 1);
const MAX_MS = Date.UTC(9999, 11, 31, 23);

/** A parameter whose schema and check are one definition. */
export interface Param<T> extends ParamDoc {
  /** The value of the raw text (undefined when absent), or a `UserError` naming the parameter. */
  read(text: string | undefined): T;
}

/**
 * Parses an ISO-8601 time into epoch ms (TIME_PATTERN's syntax).
 *
 * @example parseTime("from", "2026-11-28T10") // Date.UTC(2026, 10, 28, 10)
 */
export function parseTime(name: string, text: string): number {
  const m = TIME_RE.test(text) ? /^(.{10})(?:[Tt ](.*?))?([Zz]|[+-][\d:]+)?$/.exec(text) : null;
  if (m) {
    const [, day, time = "00", zone = "Z"] = m;
    const [h, mi = "00", s = "00"] = time.split(":");
    const [sec, frac = ""] = s.split(".");
    const z = zone.toUpperCase() === "Z" ? "Z" : `${zone.slice(0, 3)}:${zone.slice(-2)}`;
    const ms = Date.parse(
      `${day}T${h}:${mi}:${sec}${frac ? "." + (frac + "00").slice(0, 3) : ""}${z}`,
    );
    if (!Number.isNaN(ms)) return Math.min(MAX_MS, Math.max(MIN_MS, ms));
  }
  throw new UserError(`${name}: expected an ISO-8601 time, got ${JSON.stringify(text)}`);
}

/** An ISO-8601 time (epoch ms), or undefined when absent. */
export function timeParam(
  name: string,
  description: string,
  example: string,
): Param<number | undefined> {
  return {
    name,
    in: "query",
    description,
    schema: { type: "string", pattern: TIME_PATTERN, examples: [example] },
    read: (text) => text === undefined ? undefined : parseTime(name, text),
  };
}

/** A whole UTC hour (epoch ms of its start), or undefined when absent. */
export function hourParam(name: string, description: string): Param<number | undefined> {
  return {
    name,
    in: "query",
    description,
    schema: { type: "string", pattern: HOUR_PATTERN, examples: ["2026-11-28T10"] },
    read: (text) => text === undefined ? undefined : parseHourText(name, text),
  };
}

/** `2026-11-28T10` as the hour's start; the body of POST /batch/runs uses it too. */
export function parseHourText(name: string, text: string): number {
  if (!HOUR_RE.test(text)) {
    throw new UserError(
      `${name} ${
        JSON.stringify(text)
      } is not a UTC hour: expected YYYY-MM-DDTHH, e.g. 2026-11-28T10`,
    );
  }
  const [, day, h] = /^(.{10})[T ](\d{2})/.exec(text)!;
  return Date.parse(`${day}T${h}:00:00Z`);
}

/** A free text filter (an id, an email): bounded so it cannot bloat a query. */
export function textParam(
  name: string,
  description: string,
  max = 512,
): Param<string | undefined> {
  return {
    name,
    in: "query",
    description,
    schema: { type: "string", minLength: 1, maxLength: max, pattern: TEXT_PATTERN },
    read: (text) => {
      if (text === undefined) return undefined;
      // JSON Schema counts code points, not UTF-16 units.
      const n = [...text].length;
      if (n === 0 || n > max || !TEXT_RE.test(text)) {
        throw new UserError(
          `${name}: expected 1 to ${max} characters without NUL, got ${JSON.stringify(text)}`,
        );
      }
      return text;
    },
  };
}

/** One of a fixed set of words; `def` when absent. */
export function choiceParam<T extends string, D extends T | undefined>(
  name: string,
  description: string,
  choices: readonly T[],
  def: D,
): Param<T | D> {
  return {
    name,
    in: "query",
    description,
    schema: { type: "string", enum: [...choices], ...(def !== undefined ? { default: def } : {}) },
    read: (text) => {
      if (text === undefined) return def;
      if (!(choices as readonly string[]).includes(text)) {
        throw new UserError(
          `${name}: expected one of ${choices.join(", ")}, got ${JSON.stringify(text)}`,
        );
      }
      return text as T;
    },
  };
}

/** An integer from `min` to `max` written in plain digits; `def` when absent. */
export function intParam<D extends number | undefined>(
  name: string,
  description: string,
  min: number,
  max: number,
  def: D,
): Param<number | D> {
  return {
    name,
    in: "query",
    description,
    schema: {
      type: "integer",
      minimum: min,
      maximum: max,
      ...(def !== undefined ? { default: def } : {}),
    },
    read: (text) => {
      if (text === undefined) return def;
      if (!/^-?\d{1,16}$/.test(text) || Number(text) < min || Number(text) > max) {
        throw new UserError(
          `${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(text)}`,
        );
      }
      return Number(text);
    },
  };
}

/** A positive integer parameter, with a default and a maximum. */
export function limitParam(description: string, def: number, max: number): Param<number> {
  return intParam("limit", description, 1, max, def);
}

export const FROM_PARAM = timeParam(
  "from",
  "Start of the range (inclusive), ISO-8601; no zone means UTC. A range longer than the " +
    "route's maximum starts that maximum before `to` (the answer's `from` says where).",
  "2026-11-28T00:00:00Z",
);
export const TO_PARAM = timeParam(
  "to",
  "End of the range (exclusive), ISO-8601; default now. `to` at or before `from` is an empty " +
    "range (an empty answer).",
  "2026-11-29T00:00:00Z",
);
export const EMAIL_PARAM = textParam("email", "Only this user.");

export interface TimeRange {
  readonly from: number;
  readonly to: number;
}

export interface RangeOptions {
  /** Length of the range when `from` is missing. */
  readonly defaultMs: number;
  /** Longest range served: a longer one starts this long before `to`. Default: no limit. */
  readonly maxMs?: number;
  /** Now, epoch ms: the default `to`. */
  readonly now: number;
}

/**
 * `from`/`to` query parameters with their defaults. `to` at or before `from`
 * gives the empty range `from`..`from`; a range longer than `maxMs` is cut to
 * the `maxMs` before `to`.
 */
export function parseRange(
  query: (name: string) => string | undefined,
  o: RangeOptions,
): TimeRange {
  const to = TO_PARAM.read(query("to")) ?? o.now;
  const from = FROM_PARAM.read(query("from")) ?? to - o.defaultMs;
  if (to <= from) return { from, to: from };
  if (o.maxMs !== undefined && to - from > o.maxMs) return { from: to - o.maxMs, to };
  return { from, to };
}

/** The range widened to whole hours; an empty range stays empty. */
export function wholeHours(r: TimeRange): TimeRange {
  const from = Math.floor(r.from / HOUR_MS) * HOUR_MS;
  if (r.to <= r.from) return { from, to: from };
  return { from, to: Math.ceil(r.to / HOUR_MS) * HOUR_MS };
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}
