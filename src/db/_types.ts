/**
 * The JS shapes both database backends return, so a layer never checks which
 * one it talks to. postgres.js and PGlite each have their own defaults (strings
 * for int8 and numeric, local-time parsing of TIMESTAMP); these parsers replace
 * them on both sides:
 *
 * - BIGINT (int8) and NUMERIC → `number` while the value is exactly
 *   representable (integers up to 2^53-1, any non-integer numeric as a float);
 *   a larger integer comes back as `bigint` rather than silently rounded.
 * - TIMESTAMP (without time zone) is UTC by convention in this project, so it
 *   is read as UTC whatever the machine's TZ; TIMESTAMPTZ as the instant it is.
 *   Both come back as `Date`. Sessions run with `TimeZone=UTC`, so a `Date`
 *   parameter written into a TIMESTAMP column stores its UTC wall clock.
 */

/** PostgreSQL type oids the shared parsers handle. */
export const OID = {
  int8: 20,
  numeric: 1700,
  timestamp: 1114,
  timestamptz: 1184,
} as const;

/** Parses an int8 or numeric text value: a number when exact, else a bigint. */
export function parseNumber(text: string): number | bigint {
  if (/^-?\d+$/.test(text)) {
    const n = Number(text);
    return Number.isSafeInteger(n) ? n : BigInt(text);
  }
  // NaN / Infinity / fractions: a float is the useful reading of an average.
  return Number(text);
}

/** Parses TIMESTAMP text (no zone) as a UTC instant. */
export function parseTimestamp(text: string): Date {
  if (text === "infinity") return new Date(8.64e15);
  if (text === "-infinity") return new Date(-8.64e15);
  // "2020-01-01 10:00:00[.123456][ BC]": ISO form with an explicit Z.
  return new Date(text.replace(" ", "T") + "Z");
}

/** Parses TIMESTAMPTZ text ("2020-01-01 10:00:00+00") as the instant it names. */
export function parseTimestamptz(text: string): Date {
  if (text === "infinity") return new Date(8.64e15);
  if (text === "-infinity") return new Date(-8.64e15);
  // JS Date wants "+00:00", PostgreSQL prints "+00" (or "+05:30").
  const iso = text.replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00");
  return new Date(iso);
}
