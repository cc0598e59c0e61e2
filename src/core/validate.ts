/**
 * Validation of one raw message against the event schema. Pure: the clock is
 * passed in. Every rejection names a stable reason (a metric label and the
 * dead-letter header) and a human detail that quotes the bad value.
 */
import type { SchemaPlan } from "./vocabulary.ts";
import type { DeadLetterReason, DeviceEvent } from "./event.ts";

export type Validation =
  | { readonly ok: true; readonly event: DeviceEvent }
  | { readonly ok: false; readonly reason: DeadLetterReason; readonly detail: string };

const decoder = new TextDecoder("utf-8", { fatal: true });
const STRING_FIELDS = ["app", "id", "antenna_id"] as const;
const REQUIRED_FIELDS = ["bytes", "timestamp", ...STRING_FIELDS] as const;
const BLANK = /^\s*$/;
const MAX_ID_LENGTH = 128;

function reject(reason: DeadLetterReason, detail: string): Validation {
  return { ok: false, reason, detail };
}

function show(value: unknown): string {
  const s = JSON.stringify(value) ?? String(value);
  return s.length > 60 ? s.slice(0, 57) + "..." : s;
}

/**
 * Checks a message payload; `nowMs` bounds how far in the future an event may be.
 *
 * @example
 * validateMessage(new TextEncoder().encode('{"bytes":1}'), schema, Date.now())
 * // => { ok: false, reason: "missing_field", detail: 'field "timestamp" is missing' }
 */
export function validateMessage(
  value: Uint8Array | null,
  schema: SchemaPlan,
  nowMs: number,
): Validation {
  if (value === null) return reject("not_json", "message has no value (tombstone)");
  if (value.byteLength > schema.maxPayloadBytes) {
    return reject(
      "oversized",
      `payload is ${value.byteLength} bytes, more than the ${schema.maxPayloadBytes} allowed`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(value));
  } catch (e) {
    return reject("not_json", `payload is not UTF-8 JSON: ${(e as Error).message}`);
  }
  return validateObject(parsed, schema, nowMs);
}

function validateObject(
  parsed: unknown,
  schema: SchemaPlan,
  nowMs: number,
): Validation {
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    return reject("not_object", `payload is ${show(parsed)}, expected a JSON object`);
  }
  const o = parsed as Record<string, unknown>;
  for (const f of REQUIRED_FIELDS) {
    if (!(f in o) || o[f] === null) return reject("missing_field", `field "${f}" is missing`);
  }
  for (const f of STRING_FIELDS) {
    const v = o[f];
    if (typeof v !== "string") {
      return reject("wrong_type", `field "${f}" is ${show(v)}, expected a string`);
    }
    const limit = f === "app" ? schema.maxAppLength : MAX_ID_LENGTH;
    if (v.length > limit || BLANK.test(v)) {
      return reject(
        "invalid_value",
        `field "${f}" is ${show(v)}, expected 1 to ${limit} characters`,
      );
    }
  }
  const bytes = o.bytes;
  if (typeof bytes !== "number") {
    return reject("wrong_type", `field "bytes" is ${show(bytes)}, expected an integer`);
  }
  if (!Number.isInteger(bytes)) {
    return reject("non_integer_bytes", `field "bytes" is ${show(bytes)}, expected an integer`);
  }
  if (bytes < 0) return reject("negative_bytes", `field "bytes" is ${bytes}, expected >= 0`);
  // Any integer literal above 2^53-1 parses to 2^53 or more, so this catches
  // values that JSON.parse had to round.
  if (!Number.isSafeInteger(bytes)) {
    return reject(
      "bytes_too_large",
      `field "bytes" is above ${Number.MAX_SAFE_INTEGER} (2^53-1)`,
    );
  }
  const ts = o.timestamp;
  if (typeof ts !== "number") {
    return reject("wrong_type", `field "timestamp" is ${show(ts)}, expected epoch seconds`);
  }
  if (!Number.isInteger(ts)) {
    return reject("wrong_type", `field "timestamp" is ${show(ts)}, expected whole epoch seconds`);
  }
  const tsMs = ts * 1000;
  if (tsMs < schema.minTimestampMs) {
    return reject(
      "timestamp_too_old",
      `field "timestamp" is ${ts} (${iso(tsMs)}), before ${iso(schema.minTimestampMs)}`,
    );
  }
  if (tsMs > nowMs + schema.maxFutureMs) {
    return reject(
      "timestamp_in_future",
      `field "timestamp" is ${ts} (${iso(tsMs)}), more than ${
        schema.maxFutureMs / 1000
      } s ahead of the clock`,
    );
  }
  return {
    ok: true,
    event: {
      bytes,
      timestamp: ts,
      app: o.app as string,
      id: o.id as string,
      antenna_id: o.antenna_id as string,
    },
  };
}

function iso(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}
