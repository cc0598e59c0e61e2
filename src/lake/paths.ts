/**
 * Where lake files live and what their names mean. Folders are Hive-style
 * `year=YYYY/month=MM/day=DD/hour=HH/` by event time in UTC; a file is named
 * after the roll segment that produced it: `part-p<partition>-o<first>-o<last>.parquet`,
 * zero-padded so names sort by offset and a replay of the same segment
 * produces the same name (and overwrites instead of duplicating).
 */
import { HOUR_MS } from "../core/window.ts";

const pad = (n: number, width: number) => String(n).padStart(width, "0");

/**
 * The folder of an hour, with a trailing slash.
 *
 * @example hourPath(Date.UTC(2026, 10, 28, 10)) // "year=2026/month=11/day=28/hour=10/"
 */
export function hourPath(hourStartMs: number): string {
  if (!Number.isFinite(hourStartMs) || hourStartMs % HOUR_MS !== 0) {
    throw new RangeError(`Hour start must be a whole UTC hour in epoch ms, got ${hourStartMs}`);
  }
  const d = new Date(hourStartMs);
  return `year=${pad(d.getUTCFullYear(), 4)}/month=${pad(d.getUTCMonth() + 1, 2)}/day=${
    pad(d.getUTCDate(), 2)
  }/hour=${pad(d.getUTCHours(), 2)}/`;
}

const HOUR_RE = /(?:^|\/)year=(\d{4})\/month=(\d{2})\/day=(\d{2})\/hour=(\d{2})\//;

/** The hour start of a key inside an hour folder, or undefined. */
export function parseHourPath(key: string): number | undefined {
  const m = HOUR_RE.exec(key);
  if (!m) return undefined;
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]));
}

/** What a lake file name says about its rows. */
export interface FileName {
  readonly partition: number;
  /** Offset range of the segment (inclusive); rows lie within it. */
  readonly firstOffset: number;
  readonly lastOffset: number;
}

const OFFSET_WIDTH = 20;

/** @example segmentFileName(3, 1200, 1899) // "part-p0003-o00000000000000001200-o00000000000000001899.parquet" */
export function segmentFileName(
  partition: number,
  firstOffset: number,
  lastOffset: number,
): string {
  if (
    !Number.isSafeInteger(partition) || partition < 0 || !Number.isSafeInteger(firstOffset) ||
    firstOffset < 0 || !Number.isSafeInteger(lastOffset) || lastOffset < firstOffset
  ) {
    throw new RangeError(
      `Invalid segment partition=${partition} offsets ${firstOffset}..${lastOffset}`,
    );
  }
  return `part-p${pad(partition, 4)}-o${pad(firstOffset, OFFSET_WIDTH)}-o${
    pad(lastOffset, OFFSET_WIDTH)
  }.parquet`;
}

const NAME_RE = /(?:^|\/)part-p(\d{4,})-o(\d{20})-o(\d{20})\.parquet$/;

/** Parses the name part of a key; undefined when it is not a lake file. */
export function parseFileName(key: string): FileName | undefined {
  const m = NAME_RE.exec(key);
  if (!m) return undefined;
  const f = { partition: Number(m[1]), firstOffset: Number(m[2]), lastOffset: Number(m[3]) };
  return f.lastOffset >= f.firstOffset ? f : undefined;
}

/** Joins a lake prefix and a relative key. */
export function joinKey(prefix: string, key: string): string {
  if (!prefix) return key;
  return prefix.endsWith("/") ? prefix + key : `${prefix}/${key}`;
}
