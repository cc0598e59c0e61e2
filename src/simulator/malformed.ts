/**
 * Payloads of malformed messages, one kind per dead-letter reason, so a
 * simulator run exercises every rejection path of the speed layer. Each kind
 * has a few variants (cycled) and is built to trip exactly its own reason in
 * src/core/validate.ts, not an earlier check.
 */
import { DEAD_LETTER_REASONS, type DeadLetterReason } from "../core/event.ts";

/** The fields a malformed payload is derived from (a would-be valid event). */
export interface MalformedBase {
  readonly bytes: number;
  readonly timestamp: number;
  readonly app: string;
  readonly id: string;
  readonly antenna_id: string;
}

/** Malformed kinds, cycled in this order: exactly the dead-letter reasons. */
export const MALFORMED_KINDS: readonly DeadLetterReason[] = DEAD_LETTER_REASONS;

const encoder = new TextEncoder();

/** 2200-01-01T00:00:00Z: far enough ahead of any wall clock plus `max_future`. */
const FAR_FUTURE_S = 7_258_118_400;

type Fields = Record<string, unknown>;

function json(o: Fields): Uint8Array {
  return encoder.encode(JSON.stringify(o));
}

/** Replaces one field of the base event with a raw JSON literal (kept verbatim). */
function withLiteral(base: MalformedBase, field: keyof MalformedBase, literal: string): Uint8Array {
  const parts = (Object.keys(base) as (keyof MalformedBase)[]).map((k) =>
    `${JSON.stringify(k)}:${k === field ? literal : JSON.stringify(base[k])}`
  );
  return encoder.encode("{" + parts.join(",") + "}");
}

/**
 * The payload of a malformed message of `kind`, variant `variant` (any integer;
 * variants cycle). `maxPayloadBytes` sizes the oversized kind just above the
 * limit.
 *
 * @example malformedPayload("negative_bytes", base, 0, 65536) // {"bytes":-…,…}
 */
export function malformedPayload(
  kind: DeadLetterReason,
  base: MalformedBase,
  variant: number,
  maxPayloadBytes: number,
): Uint8Array {
  const v = variant;
  const ev: Fields = { ...base };
  switch (kind) {
    case "oversized": {
      // A well-formed event padded past the limit: only its size is wrong.
      const head = JSON.stringify({ ...ev, pad: "" });
      const pad = "x".repeat(Math.max(0, maxPayloadBytes + 1 + (v % 7) - head.length));
      return json({ ...ev, pad });
    }
    case "not_json":
      return [
        encoder.encode(JSON.stringify(ev).slice(0, 20)), // truncated
        encoder.encode(`bytes=${base.bytes} app=${base.app}`),
        new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), // "{", invalid UTF-8, "}"
        new Uint8Array(0),
      ][v % 4];
    case "not_object":
      return encoder.encode(
        [`[${base.bytes},${base.timestamp}]`, JSON.stringify(base.app), String(base.bytes), "null"][
          v % 4
        ],
      );
    case "missing_field": {
      const keys = Object.keys(ev);
      const k = keys[v % keys.length];
      // Every other round the field is present but null, which is also "missing".
      if (Math.floor(v / keys.length) % 2 === 1) ev[k] = null;
      else delete ev[k];
      return json(ev);
    }
    case "wrong_type":
      return [
        withLiteral(base, "bytes", JSON.stringify(String(base.bytes))),
        withLiteral(
          base,
          "timestamp",
          JSON.stringify(new Date(base.timestamp * 1000).toISOString()),
        ),
        withLiteral(base, "app", String(v)),
        withLiteral(base, "timestamp", `${base.timestamp}.5`),
      ][v % 4];
    case "invalid_value":
      return [
        withLiteral(base, "id", '""'),
        withLiteral(base, "app", '"   "'),
        withLiteral(base, "antenna_id", '""'),
      ][v % 3];
    case "negative_bytes":
      return withLiteral(base, "bytes", String(-Math.max(1, base.bytes)));
    case "non_integer_bytes":
      return withLiteral(base, "bytes", `${base.bytes}.${(v % 9) + 1}`);
    case "bytes_too_large":
      // Written as digits: JSON.stringify of such a number would round it.
      return withLiteral(
        base,
        "bytes",
        ["9007199254740992", "9007199254740993", "123456789012345678901234567890"][v % 3],
      );
    case "timestamp_too_old":
      return withLiteral(base, "timestamp", String([946_684_799, 0, 631_152_000][v % 3]));
    case "timestamp_in_future":
      return withLiteral(base, "timestamp", String(FAR_FUTURE_S + (base.timestamp % 86_400)));
  }
}
