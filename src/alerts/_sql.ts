/**
 * SQL pieces of this folder's statements, shared with the speed sink: array
 * parameters and `TS` (epoch ms → TIMESTAMP). `nums` is the speed
 * sink's `intArray` for arrays without nulls (typed arrays too), through
 * Array.prototype.join, which converts numbers natively: for the 100,000-
 * element arrays of a fold it is about twice as fast as mapping each to a
 * string first.
 */
export { intArray, textArray, TS } from "../speed/mod.ts";

/** A bigint[]/int[] literal of finite integers (no nulls). */
export function nums(values: ArrayLike<number> & { join(sep: string): string }): string {
  return "{" + values.join(",") + "}";
}

/** Index of the first threshold without an alert in `mask` (bit i: threshold i), or -1. */
export function firstOpen(mask: number, thresholds: number): number {
  for (let i = 0; i < thresholds; i++) if ((mask & (1 << i)) === 0) return i;
  return -1;
}
